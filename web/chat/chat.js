// The chat page's logic, for the chat app (examples/chat) in namespace
// /chatroom, over the official Socket.IO 0.9 client.
//
// What it keeps right through faults:
//   - Every (re)connect re-sends the nickname (with this page's key, so the
//     new session takes the old one's place) and the room, and says so.
//     The user list is emptied while disconnected and refilled by the join.
//   - The status shows connecting / connected / reconnecting / offline with
//     the transport in use.
//   - Lines sent while offline are queued (the hint under the messages says
//     so) and sent after the rejoin, each with an id, so a line resent after
//     a reconnect is never said twice.
//   - Every request has a client-side timeout: no answer in ACK_TIMEOUT_MS
//     (no worker running, say) is reported.
//   - On pagehide the session is ended at once (navigator.sendBeacon to the
//     0.9 ?disconnect URL for polling transports, 0:: on a websocket)
//     instead of the client's synchronous XHR, which browsers refuse on
//     unload.
//
// ?transport=websocket|xhr-polling|jsonp-polling picks one transport.
(function () {
  'use strict';

  var ACK_TIMEOUT_MS = 5000;  // how long a request waits for the server's answer
  var QUEUE_MAX = 50;         // lines kept while offline
  var LINES_MAX = 500;        // lines kept on the page
  var OFFLINE_AFTER = 3;      // failed reconnect attempts before "offline"

  var $ = function (id) { return document.getElementById(id); };
  var app = $('app'), statusEl = $('status'), statusText = $('status-text'), retry = $('retry'),
    messages = $('messages'), hint = $('hint'), text = $('text'), send = $('send'),
    nickInput = $('nick'), roomInput = $('room'), users = $('users'), usersNote = $('users-note'),
    people = $('people'), peopleToggle = $('people-toggle');

  if (typeof io === 'undefined') {
    $('missing').hidden = false;
    statusEl.dataset.phase = 'offline';
    statusText.textContent = 'no client script';
    return;
  }

  // The transports option merges into the default list by index, so set
  // the list itself.
  var params = new URLSearchParams(location.search);
  var forced = params.get('transport');
  if (forced) io.transports = [forced];

  var socket = io.connect(location.protocol + '//' + location.host + '/chatroom', {
    'force new connection': true,
    'auto connect': false,                // once the page has loaded: see the end
    'sync disconnect on unload': false,   // see pagehide below
    'reconnection limit': 8000,           // back off up to 8 s between attempts ...
    'max reconnection attempts': Infinity // ... and never give up
  });

  // key identifies this page load to the chat app: a reconnected session
  // presenting it replaces the page's old session in its room.
  var key = randomId(16);

  var st = {
    phase: 'connecting',
    attempts: 0,
    connectedOnce: false,
    nick: '',       // confirmed by the server in this session
    room: '',
    wantNick: '',   // what the user chose: re-sent after every reconnect
    wantRoom: '',
    entered: false, // nick and room confirmed in this session
    entering: false, // a nick or join request is under way
    everEntered: false,
    users: [],
    leaving: false,
  };
  var epoch = 0;       // bumped on every disconnect: answers from before are void
  var inflight = [];   // requests waiting for their answer
  var queue = [];      // lines not yet confirmed: {id, text, li, sent}
  window.chat = { socket: socket, state: st, queue: queue, key: key };

  function randomId(bytes) {
    var a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }
  function transport() {
    var t = socket.socket.transport;
    return (t && t.name) || forced || 'auto';
  }
  function connected() { return socket.socket.connected && st.phase === 'connected'; }
  function notYet() { return st.connectedOnce ? 'You are offline' : 'Not connected yet'; }

  // ---- rendering ----

  // hue gives each nickname its colour, never a red (errors are red).
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 280;
    return 40 + h;
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function clock(ts) {
    var d = new Date(typeof ts === 'number' && isFinite(ts) ? ts : Date.now());
    var t = document.createElement('time');
    t.dateTime = d.toISOString();
    t.title = d.toLocaleString();
    t.textContent = pad(d.getHours()) + ':' + pad(d.getMinutes());
    return t;
  }
  // line adds a line to the messages: kind is msg, notice, info or error.
  function line(kind, o) {
    var nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
    var li = document.createElement('li');
    li.className = 'line ' + kind;
    if (kind === 'error') li.setAttribute('role', 'alert');
    if (o.kind) li.dataset.kind = o.kind;
    li.appendChild(clock(o.ts));
    var body = document.createElement('div');
    body.className = 'body';
    if (o.nick !== undefined) {
      var n = document.createElement('span');
      n.className = 'nick';
      n.style.setProperty('--hue', hue(o.nick));
      n.textContent = o.nick;
      body.appendChild(n);
    }
    var t = document.createElement('span');
    t.className = 'text';
    t.textContent = o.text;
    body.appendChild(t);
    li.appendChild(body);
    messages.appendChild(li);
    while (messages.children.length > LINES_MAX) messages.removeChild(messages.firstChild);
    if (nearBottom || o.scroll) messages.scrollTop = messages.scrollHeight;
    return li;
  }
  function info(t) { return line('info', { text: t }); }
  function error(t) { return line('error', { text: t, scroll: true }); }
  function tag(li, cls, t) {
    var el = li.querySelector('.tag');
    if (!t) { if (el) el.remove(); return; }
    if (!el) {
      el = document.createElement('span');
      li.querySelector('.body').appendChild(el);
    }
    el.className = 'tag ' + cls;
    el.textContent = t;
  }

  function renderStatus() {
    var t = transport(), s;
    switch (st.phase) {
      case 'connecting': s = 'connecting via ' + t + '…'; break;
      case 'connected': s = 'connected via ' + t; break;
      case 'reconnecting': s = 'reconnecting via ' + t + '…' + (st.attempts ? ' (attempt ' + st.attempts + ')' : ''); break;
      default:
        var wait = Math.round((st.nextTry - Date.now()) / 1000);
        s = st.offlineWhy ? 'offline via ' + t + ': ' + st.offlineWhy : (!st.nextTry ? 'offline, retrying via ' + t
          : wait > 0 ? 'offline, next try via ' + t + ' in ' + wait + ' s' : 'offline, trying via ' + t + ' now…');
    }
    statusEl.dataset.phase = st.phase;
    statusEl.dataset.transport = t;
    statusText.textContent = s;
    statusEl.title = s;
    retry.hidden = !st.canRetry;
  }
  function renderRoom() {
    var room = st.room || st.wantRoom;
    $('room-name').textContent = room || 'no room yet';
    document.querySelector('.roombar').classList.toggle('no-room', !room);
    document.title = room ? '#' + room + ' · realtime chat' : 'realtime chat';
  }
  function renderUsers() {
    users.textContent = '';
    var stale = !st.entered;
    if (!stale) {
      st.users.forEach(function (n) {
        var li = document.createElement('li');
        var s = document.createElement('span');
        s.className = 'name';
        s.textContent = n;
        li.appendChild(s);
        if (n === st.nick) li.className = 'me';
        users.appendChild(li);
      });
    }
    $('people-count').textContent = stale ? '–' : String(st.users.length);
    $('people-where').textContent = stale ? '' : '· ' + st.users.length;
    people.classList.toggle('stale', stale);
    usersNote.hidden = !stale;
    usersNote.textContent = !st.everEntered ? 'Join a room to see who is here.'
      : st.phase === 'connected' ? 'Rejoining…' : 'Reconnecting: the list comes back with the connection.';
  }
  function renderComposer() {
    var usable = st.entered || st.everEntered;
    text.disabled = send.disabled = !usable;
    text.placeholder = usable ? 'Message #' + (st.room || st.wantRoom) : 'Join a room to chat';
    var h = '', off = false;
    var waiting = queue.filter(function (q) { return !q.sent; }).length;
    if (!usable) {
      h = 'Choose a nickname and join a room to start chatting.';
    } else if (!connected()) {
      off = true;
      h = 'You are offline: lines you send now are queued and sent when the connection is back' +
        (waiting ? ' (' + waiting + ' queued).' : '.');
    } else if (!st.entered) {
      off = true;
      h = 'Rejoining: lines you send now are queued' + (waiting ? ' (' + waiting + ' queued).' : '.');
    }
    hint.textContent = h;
    hint.classList.toggle('offline', off);
  }
  function render() { renderStatus(); renderRoom(); renderUsers(); renderComposer(); }
  setInterval(function () { if (st.phase === 'offline' && st.nextTry) renderStatus(); }, 1000);

  // ---- requests with a timeout ----

  // request emits name with args and calls cb(answer, how): how is
  // 'timeout' (answer null) when the server has not answered in time, then
  // 'late' if the answer still comes, else ''. A disconnect voids it.
  function request(name, args, cb) {
    var r = { epoch: epoch, done: false, timedOut: false };
    r.timer = setTimeout(function () {
      if (r.done || r.epoch !== epoch) return;
      r.timedOut = true;
      cb(null, 'timeout');
    }, ACK_TIMEOUT_MS);
    inflight.push(r);
    socket.emit.apply(socket, [name].concat(args, [function (res) {
      if (r.epoch !== epoch || r.done) return;
      r.done = true;
      clearTimeout(r.timer);
      inflight.splice(inflight.indexOf(r), 1);
      cb(res || {}, r.timedOut ? 'late' : '');
    }]));
  }
  function noAnswer(what) {
    error('The server did not answer ' + what + ' within ' + ACK_TIMEOUT_MS / 1000 +
      ' s. Is the chat worker running? If the answer comes later, it still applies.');
  }

  // ---- entering: nickname, then room ----

  // enter (re-)sends the chosen nickname and room to the server.
  // One entry at a time: a second click while one is under way does nothing.
  function enter(again) {
    if (!st.wantNick) { render(); return; }
    if (st.entering) return;
    st.entering = true;
    var nick = st.wantNick, room = st.wantRoom;
    var note = again && room ? info('Reconnected via ' + transport() + ': rejoining ' + room + ' as ' + nick + '…') : null;
    request('nick', [nick, key], function (res, how) {
      st.entering = false;
      if (how === 'timeout') return noAnswer('“set nickname ' + nick + '”');
      if (res.error) {
        error(res.error);
        if (!st.nick) st.wantNick = '';
        return render();
      }
      st.nick = res.nick;
      if (!room) { info('You are ' + res.nick + '.'); return render(); }
      joinRoom(room, again, note);
    });
  }
  function joinRoom(room, again, note) {
    if (st.entering) return;
    st.entering = true;
    request('join', [room], function (res, how) {
      st.entering = false;
      if (how === 'timeout') return noAnswer('“join ' + room + '”');
      if (res.error) { error(res.error); return render(); }
      var moved = st.entered && st.room !== res.room;
      st.room = st.wantRoom = res.room;
      st.nick = st.wantNick = res.nick || st.nick;
      st.entered = st.everEntered = true;
      st.users = res.users || [];
      var msg = again ? 'Reconnected via ' + transport() + ': rejoined ' + res.room + ' as ' + st.nick + '.'
        : (moved ? 'You moved to ' : 'You joined ') + res.room + ' as ' + st.nick + '.';
      if (note) note.querySelector('.text').textContent = msg; else info(msg);
      render();
      flush();
    });
  }

  // ---- lines ----

  function flush() {
    if (!connected() || !st.entered) return renderComposer();
    queue.forEach(function (q) {
      if (q.sent) return;
      q.sent = true;
      tag(q.li, '', 'sending…');
      request('say', [q.text, q.id], function (res, how) {
        if (how === 'timeout') return tag(q.li, 'failed', 'no answer yet');
        if (res.error) {
          drop(q);
          q.li.classList.remove('msg', 'pending');
          q.li.classList.add('error');
          q.li.querySelector('.text').textContent = 'Not sent (' + res.error + '): ' + q.text;
          tag(q.li);
          return;
        }
        if (queue.indexOf(q) >= 0) { tag(q.li, '', 'sent'); drop(q); }
      });
    });
    renderComposer();
  }
  function drop(q) {
    var i = queue.indexOf(q);
    if (i >= 0) queue.splice(i, 1);
    renderComposer();
  }

  // ---- socket events ----

  socket.on('connecting', function () { renderStatus(); });
  socket.on('connect', function () {
    var again = st.connectedOnce;
    st.connectedOnce = true;
    st.phase = 'connected';
    st.attempts = 0;
    st.offlineWhy = '';
    st.nextTry = 0;
    st.canRetry = false;
    if (again && !st.wantNick) info('Reconnected via ' + transport() + '.');
    render();
    enter(again);
  });
  socket.on('disconnect', function (reason) {
    if (st.leaving) return;
    epoch++;
    inflight.forEach(function (r) { clearTimeout(r.timer); });
    inflight.length = 0;
    st.entered = false;
    st.entering = false;
    st.nick = '';
    st.room = '';
    queue.forEach(function (q) { if (q.sent) { q.sent = false; tag(q.li, 'queued', 'queued'); } });
    function lost() {
      st.phase = 'reconnecting';
      line('warn', { text: 'Connection lost: reconnecting…' });
      render();
    }
    if (reason !== 'booted' && !socket.socket.connected) return lost();
    // "booted": the server ended the session (0::) or left the namespace
    // (0::/chatroom), and the client does not reconnect by itself; or the
    // server did not know the session (7:::1+0), and the client reconnects
    // right after this event.
    setTimeout(function () {
      if (st.leaving) return;
      if (socket.socket.reconnecting) return lost();
      st.phase = 'offline';
      st.offlineWhy = 'disconnected by the server';
      st.canRetry = true;
      error('The server ended this session. Reconnect to carry on.');
      render();
    }, 0);
  });
  socket.on('reconnecting', function (delay, attempts) {
    st.attempts = attempts;
    if (attempts >= OFFLINE_AFTER || navigator.onLine === false) {
      st.phase = 'offline';
      st.offlineWhy = '';
      st.nextTry = Date.now() + delay;
    } else {
      st.phase = 'reconnecting';
    }
    render();
  });
  socket.on('reconnect_failed', function () {
    st.phase = 'offline';
    st.offlineWhy = 'gave up reconnecting';
    st.canRetry = true;
    render();
  });
  socket.on('connect_failed', function () {
    st.phase = 'offline';
    st.offlineWhy = 'could not connect';
    st.canRetry = true;
    render();
  });
  socket.on('error', function (why) {
    // A handshake the server refuses with 403 (an origin -origins refuses,
    // or the authorization hook) leaves the 0.9 client "connecting" for
    // good (socket.io.js handshake: only that status does not reset it),
    // so it would never try again: say why, and let the user retry.
    if (/^handshake (bad origin|unauthorized)/.test(why || '')) {
      socket.socket.connecting = false;
      st.phase = 'offline';
      st.offlineWhy = 'the server refused the connection (' + why + ')';
      st.canRetry = true;
      render();
      return;
    }
    // The first connect is not retried by the client: retry it here.
    if (!st.connectedOnce && !socket.socket.connecting) {
      st.phase = 'offline';
      st.offlineWhy = 'cannot reach the server, retrying';
      st.nextTry = 0;
      render();
      setTimeout(function () { if (!socket.socket.connected) socket.socket.connect(); }, 3000);
    } else if (why) {
      console.info('socket.io error:', why);
    }
  });
  retry.onclick = function () {
    st.canRetry = false;
    st.phase = 'reconnecting';
    render();
    if (socket.socket.connected) location.reload(); // only the namespace was left
    else if (st.connectedOnce) socket.socket.reconnect();
    else socket.socket.connect();
  };
  window.addEventListener('online', function () {
    if (st.offlineWhy === 'the browser is offline') st.offlineWhy = '';
    renderStatus();
  });
  window.addEventListener('offline', function () {
    if (!socket.socket.connected) { st.phase = 'offline'; st.offlineWhy = 'the browser is offline'; render(); }
  });

  socket.on('notice', function (n) { line('notice', { text: n.text, ts: n.ts, kind: n.kind }); });
  socket.on('users', function (list) {
    if (!st.entered || !Array.isArray(list)) return;
    st.users = list;
    renderUsers();
  });
  socket.on('said', function (m) {
    var mine = false;
    for (var i = 0; i < queue.length; i++) {
      if (m.id && queue[i].id === m.id) {
        queue[i].li.remove();
        queue.splice(i, 1);
        mine = true;
        break;
      }
    }
    var li = line('msg', { nick: m.nick, text: m.text, ts: m.ts, scroll: mine });
    if (m.nick === st.nick) li.classList.add('mine');
    renderComposer();
  });

  // ---- the forms ----

  $('nick-form').onsubmit = function (e) {
    e.preventDefault();
    var name = nickInput.value.trim();
    if (!name) { error('Type a nickname first.'); nickInput.focus(); return; }
    if (!connected()) {
      st.wantNick = name;
      if (!st.wantRoom) st.wantRoom = roomInput.value.trim() || 'lobby';
      info(notYet() + ': you will be ' + name + ' when the connection is back.');
      return render();
    }
    if (st.entered) {
      // A rename: the room hears "a is now b"; nothing is joined again.
      if (name === st.nick) return;
      request('nick', [name, key], function (res, how) {
        if (how === 'timeout') return noAnswer('“set nickname ' + name + '”');
        if (res.error) { error(res.error); return; }
        st.nick = st.wantNick = res.nick;
        renderUsers();
      });
      return;
    }
    st.wantNick = name;
    if (!st.wantRoom) st.wantRoom = roomInput.value.trim() || 'lobby';
    enter(false);
  };
  $('room-form').onsubmit = function (e) {
    e.preventDefault();
    var room = roomInput.value.trim();
    if (!room) { error('Type a room name first.'); roomInput.focus(); return; }
    if (!st.wantNick) {
      var name = nickInput.value.trim();
      if (!name) { error('Choose a nickname first.'); nickInput.focus(); return; }
      st.wantNick = name;
    }
    if (!connected()) {
      st.wantRoom = room;
      info(notYet() + ': you will join ' + room + ' when the connection is back.');
      return render();
    }
    if (!st.nick) { st.wantRoom = room; return enter(false); }
    if (st.entered && room === st.room) return;
    joinRoom(room, false, null);
  };
  $('say-form').onsubmit = function (e) {
    e.preventDefault();
    var t = text.value;
    if (!t.trim()) return;
    if (queue.length >= QUEUE_MAX) {
      error('Already ' + QUEUE_MAX + ' lines wait for the connection; this one was not queued.');
      return;
    }
    var q = { id: randomId(8), text: t, sent: false };
    q.li = line('msg pending', { nick: st.nick || st.wantNick, text: t, scroll: true });
    tag(q.li, 'queued', 'queued');
    queue.push(q);
    text.value = '';
    flush();
  };
  peopleToggle.onclick = function () {
    var open = !app.classList.contains('people-open');
    app.classList.toggle('people-open', open);
    peopleToggle.setAttribute('aria-expanded', String(open));
  };

  // Leaving the page ends the session at once, so the others' user list
  // drops this tab now rather than after the close timeout. The client's
  // own "sync disconnect on unload" uses a synchronous XHR, which browsers
  // refuse during unload (a console error, and the session lingers).
  window.addEventListener('pagehide', function () {
    st.leaving = true;
    var s = socket.socket;
    var polling = s.transport && s.transport.name !== 'websocket' && s.transport.name !== 'flashsocket';
    if (s.connected && s.sessionid && polling && navigator.sendBeacon) {
      navigator.sendBeacon(location.protocol + '//' + location.host + '/socket.io/1//' +
        encodeURIComponent(s.sessionid) + '/?disconnect=1');
    }
    if (s.connected && !polling) s.disconnect(); // sends 0:: on the websocket
  });
  window.addEventListener('pageshow', function (e) {
    if (e.persisted) location.reload(); // back from the back/forward cache: the session is gone
  });

  render();

  // Connect once the page has loaded. Over jsonp-polling, each poll is a
  // script element; begun before the load event, they chain into each
  // other and the page never finishes loading (the browser shows it
  // loading for good, and load handlers never run): the 0.9 client waits
  // for the load event only in Firefox (jsonp-polling.js, indicator).
  if (document.readyState === 'complete') socket.socket.connect();
  else window.addEventListener('load', function () { socket.socket.connect(); });
})();
