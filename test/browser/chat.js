// Headless Chromium drives the chat page (web/chat) and checks what a user
// sees, on the DOM and in the console. One suite per run:
//
//   node browser/chat.js --suite pair --a URL --b URL --transport-a websocket --transport-b jsonp-polling --shots DIR --tag NAME
//     two pages through two gateways, each on its own transport: entering,
//     unique nicknames, errors, times, who is online, chatting, renaming,
//     a 1,500-character word at desktop and phone width, reload and close;
//   node browser/chat.js --suite faults --url LB --shots DIR
//     two pages behind the load balancer while gateways are killed (kill -9)
//     and handshakes are refused: reconnecting, offline, the rejoin, queued
//     lines, a fresh user list;
//   node browser/chat.js --suite restart --url DEMO
//     two pages on the one-process demo while it is killed and started
//     again: both rejoin;
//   node browser/chat.js --suite noworker --url URL --shots DIR
//     a gateway without workers: requests time out and the page says so;
//   node browser/chat.js --suite refused --url URL
//     a gateway whose -origins refuses the page: its handshake's 403 is
//     said, and Reconnect tries again.
//
// The faults and restart suites ask the program that started them for what
// only it can do: they print "# do kill-gateway <sid>" (kill -9 the gateway
// holding that session), "# do redis-restart" (Redis killed and started
// again, empty) or "# do restart" (the demo killed and started again) and
// wait for a line "ok" on stdin.
//
// Prints ok/not ok lines, "# screenshot PATH" lines and "N passed, M failed";
// exits 0 when all passed.
'use strict';

// How soon a reloaded or closed page must leave the others' user list: well
// under the close timeout the test gives the gateways (20 s).
var LEAVE_MS = 10000;

var fs = require('fs');
var path = require('path');
var readline = require('readline');
var playwright = require('playwright-core');

var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }

var passed = 0, failed = 0;
function result(ok, name, why) {
  if (ok) { passed++; console.log('ok - ' + name); } else { failed++; console.log('not ok - ' + name + ': ' + why); }
}
function check(cond, name, why) { result(!!cond, name, why === undefined ? 'failed' : why); }

var DESKTOP = { width: 1280, height: 800 }, PHONE = { width: 390, height: 844 };
var WAIT = 20000; // ms for anything the cluster does

// ---- talking to the program that started us ----

var pendingAnswers = [], answerLines = [];
var rl = readline.createInterface({ input: process.stdin });
rl.on('line', function (l) {
  if (pendingAnswers.length) pendingAnswers.shift()(l); else answerLines.push(l);
});
function ask(cmd) {
  console.log('# do ' + cmd);
  return new Promise(function (resolve, reject) {
    function got(l) { if (l === 'ok') resolve(); else reject(new Error(cmd + ': ' + l)); }
    if (answerLines.length) got(answerLines.shift()); else pendingAnswers.push(got);
  });
}

// ---- pages ----

// Watches what a user and the console see: the status's phases, console
// errors, uncaught exceptions and HTTP errors.
var STATUS_WATCH = function () {
  window.__phases = [];
  document.addEventListener('DOMContentLoaded', function () {
    var s = document.getElementById('status');
    if (!s) return;
    var last = '';
    function note() {
      var p = s.dataset.phase + ' | ' + document.getElementById('status-text').textContent;
      if (p !== last) { window.__phases.push(p); last = p; }
    }
    note();
    new MutationObserver(note).observe(s, { attributes: true, subtree: true, childList: true, characterData: true });
  });
};

var pages = []; // open pages, described when a suite fails

async function open(browser, name, url) {
  var context = await browser.newContext({ viewport: DESKTOP });
  var p = await context.newPage();
  pages.push(p);
  p.label = name;
  p.errors = [];     // console errors and uncaught exceptions
  p.httpErrors = []; // responses >= 400
  p.on('console', function (m) { if (m.type() === 'error') p.errors.push('console: ' + m.text()); });
  p.on('pageerror', function (e) { p.errors.push('exception: ' + e.message); });
  p.on('response', function (r) { if (r.status() >= 400) p.httpErrors.push(r.status() + ' ' + r.url()); });
  // The page's last requests, with when they started and how they ended
  // (printed when a suite fails): a request that never ends shows here.
  p.requests = [];
  var t0 = Date.now();
  p.on('request', function (r) {
    r.trace = { start: Date.now() - t0, url: r.url().replace(/^https?:\/\/[^/]+/, ''), end: 'pending' };
    p.requests.push(r.trace);
    if (p.requests.length > 40) p.requests.shift();
  });
  p.on('requestfinished', async function (r) {
    var res = await r.response().catch(function () { return null; });
    r.trace.end = (res ? res.status() : '?') + ' after ' + (Date.now() - t0 - r.trace.start) + ' ms';
  });
  p.on('requestfailed', function (r) {
    r.trace.end = 'failed (' + (r.failure() || {}).errorText + ') after ' + (Date.now() - t0 - r.trace.start) + ' ms';
  });
  await p.addInitScript(STATUS_WATCH);
  // The 0.9 client keeps a page "loading" while it polls over jsonp, so
  // wait for the DOM, not for the load event.
  await p.goto(url, { waitUntil: 'domcontentloaded' });
  return p;
}

async function waitStatus(p, phase, transport, timeout) {
  await p.waitForFunction(function (a) {
    var s = document.getElementById('status');
    return s.dataset.phase === a[0] && (!a[1] || s.textContent.indexOf(a[1]) >= 0);
  }, [phase, transport], { timeout: timeout || WAIT });
}
function statusOf(p) {
  return p.evaluate(function () {
    var s = document.getElementById('status');
    return { phase: s.dataset.phase, text: document.getElementById('status-text').textContent, phases: window.__phases.slice() };
  });
}

function lines(p) {
  return p.evaluate(function () {
    return Array.from(document.querySelectorAll('#messages li')).map(function (li) {
      var t = li.querySelector('time');
      var tag = li.querySelector('.tag');
      return {
        cls: li.className, kind: li.dataset.kind || '', text: li.querySelector('.text').textContent,
        nick: (li.querySelector('.nick') || {}).textContent || '', time: t ? t.dateTime : '',
        shown: t ? t.textContent : '', tag: tag ? tag.textContent : '',
      };
    });
  });
}
async function waitLine(p, cls, substr, timeout) {
  await p.waitForFunction(function (a) {
    return Array.from(document.querySelectorAll('#messages li.' + a[0])).some(function (li) {
      return li.textContent.indexOf(a[1]) >= 0;
    });
  }, [cls, substr], { timeout: timeout || WAIT });
}
function usersOf(p) {
  return p.evaluate(function () {
    return Array.from(document.querySelectorAll('#users li')).map(function (li) { return li.textContent; });
  });
}
async function waitUsers(p, want, timeout) {
  await p.waitForFunction(function (want) {
    var got = Array.from(document.querySelectorAll('#users li .name')).map(function (s) { return s.textContent; });
    return got.join(',') === want.join(',');
  }, want, { timeout: timeout || WAIT });
}

async function setNick(p, nick) {
  await p.fill('#nick', nick);
  await p.click('#nick-go');
}
async function enter(p, nick, room) {
  if (room) await p.fill('#room', room);
  await setNick(p, nick);
  await p.waitForFunction(function (n) {
    return window.chat.state.entered && window.chat.state.nick === n;
  }, nick, { timeout: WAIT });
}
async function say(p, text) {
  await p.fill('#text', text);
  await p.click('#send');
}

// Straight from the DevTools protocol: page.screenshot waits for fonts,
// which a page polling over jsonp (a script always loading) never has.
async function shoot(p, size, name) {
  var dir = opt('shots');
  if (!dir) return;
  await p.setViewportSize(size);
  await p.waitForTimeout(150);
  var cdp = await p.context().newCDPSession(p);
  var img = await cdp.send('Page.captureScreenshot', { format: 'png' });
  await cdp.detach();
  var file = path.join(dir, name + '.png');
  fs.writeFileSync(file, Buffer.from(img.data, 'base64'));
  console.log('# screenshot ' + file);
}

// layoutProblems lists what is off-screen, covered or scrolling sideways
// at the page's current size.
function layoutProblems(p, phone) {
  return p.evaluate(function (phone) {
    var vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    var out = [];
    if (document.documentElement.scrollWidth > vw) out.push('the page scrolls sideways (' + document.documentElement.scrollWidth + ' > ' + vw + ')');
    var msgs = document.getElementById('messages');
    if (msgs.scrollWidth > msgs.clientWidth) out.push('the messages scroll sideways');
    var mr = msgs.getBoundingClientRect();
    Array.from(msgs.querySelectorAll('li')).forEach(function (li) {
      var r = li.getBoundingClientRect();
      if (r.right > mr.right + 1) out.push('a line sticks out of the messages by ' + Math.round(r.right - mr.right) + ' px');
    });
    var need = ['#status', '#nick', '#nick-go', '#room', '#room-go', '#text', '#send', '#room-name'];
    need.push(phone ? '#people-toggle' : '#users li');
    need.forEach(function (sel) {
      var el = document.querySelector(sel);
      if (!el) { out.push(sel + ' missing'); return; }
      var r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) { out.push(sel + ' not shown'); return; }
      if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
        out.push(sel + ' off-screen at ' + [r.left, r.top, r.right, r.bottom].map(Math.round).join(','));
        return;
      }
      var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      if (!hit || !(hit === el || el.contains(hit))) out.push(sel + ' covered by ' + (hit ? hit.tagName + '#' + hit.id + '.' + hit.className : 'nothing'));
    });
    return out;
  }, phone);
}

// ---- suites ----

async function pair(browser) {
  var ta = opt('transport-a', 'websocket'), tb = opt('transport-b', 'xhr-polling'), tag = opt('tag', ta + '-' + tb);
  var a = await open(browser, 'a', opt('a') + '/?transport=' + ta);
  var b = await open(browser, 'b', opt('b') + '/?transport=' + tb);
  for (var [p, t] of [[a, ta], [b, tb]]) {
    await waitStatus(p, 'connected', 'connected via ' + t);
    var s = await statusOf(p);
    check(s.phases[0] === 'connecting | connecting via ' + t + '…' && s.text === 'connected via ' + t,
      'page ' + p.label + ' shows connecting, then connected via ' + t, JSON.stringify(s));
  }
  // jsonp-polling polls begun before the load event would keep the page
  // loading for good.
  var loaded = await Promise.all([a, b].map(function (p) {
    return p.waitForFunction(function () { return document.readyState === 'complete'; }, null, { timeout: 5000 })
      .then(function () { return 'complete'; }, function () { return p.evaluate(function () { return document.readyState; }); });
  }));
  check(loaded.join() === 'complete,complete', 'both pages finish loading (' + ta + ', ' + tb + ')', JSON.stringify(loaded));
  var icon = await a.evaluate(function () {
    var l = document.querySelector('link[rel~=icon]');
    if (!l) return 'no icon link';
    return new Promise(function (resolve) {
      var img = new Image();
      img.onload = function () { resolve(l.href.slice(0, 18) + ' ' + (img.naturalWidth > 0)); };
      img.onerror = function () { resolve('the icon does not load'); };
      img.src = l.href;
    });
  });
  check(icon === 'data:image/svg+xml true', 'the favicon is an inline image that loads (no /favicon.ico request)', icon);

  var ann = 'ann-' + ta, bob = 'bob-' + tb, robert = 'robert-' + tb;
  await enter(a, ann);
  var la = await lines(a);
  check(la.some(function (l) { return /\binfo\b/.test(l.cls) && l.text === 'You joined lobby as ' + ann + '.'; }) &&
    await a.textContent('#room-name') === 'lobby',
  'entering: a nickname, then the room, and the page says so', JSON.stringify(la));

  // A taken nickname (another case) is refused with an error that looks
  // like an error, not like a notice.
  await setNick(b, ann.toUpperCase());
  await waitLine(b, 'error', 'is taken in lobby');
  var looks = await b.evaluate(function () {
    var e = document.querySelector('#messages li.error');
    var probe = document.createElement('li');
    probe.className = 'line notice';
    probe.innerHTML = '<time></time><div class="body"><span class="text">x</span></div>';
    document.getElementById('messages').appendChild(probe);
    var cs = function (el) { var s = getComputedStyle(el); return s.backgroundColor + ' ' + getComputedStyle(el.querySelector('.text')).color + ' ' + s.borderLeftWidth; };
    var r = { error: cs(e), notice: cs(probe), role: e.getAttribute('role'), entered: window.chat.state.entered };
    probe.remove();
    return r;
  });
  check(looks.error !== looks.notice && looks.role === 'alert' && !looks.entered,
    'a taken nickname is refused, shown as an error unlike a notice', JSON.stringify(looks));

  await enter(b, bob);
  await waitUsers(a, [ann, bob]);
  await waitLine(a, 'notice', bob + ' joined');
  var who = await a.evaluate(function () {
    return { count: document.getElementById('people-count').textContent, me: document.querySelector('#users li.me .name').textContent };
  });
  check(who.count === '2' && who.me === ann, 'who is online: the list, its count and which one is you', JSON.stringify(who));

  var hello = 'hello from ' + ta + ' </script> 😀', back = 'hi back from ' + tb;
  await say(a, hello);
  await waitLine(b, 'msg', hello);
  await say(b, back);
  await waitLine(a, 'msg', back);
  var now = Date.now();
  var lb = await lines(b);
  var got = lb.filter(function (l) { return l.text === hello; })[0];
  check(got && got.nick === ann && Math.abs(Date.parse(got.time) - now) < 60000 && /^\d\d:\d\d/.test(got.shown),
    ta + ' -> ' + tb + ' -> ' + ta + ', each line with its sender and the server\'s time', JSON.stringify(got));
  la = await lines(a);
  check(la.filter(function (l) { return /\bnotice\b/.test(l.cls); }).every(function (l) { return l.time && l.shown; }),
    'notices show times', JSON.stringify(la));

  // Renaming tells the room once and joins nothing again.
  await setNick(b, robert);
  await waitLine(a, 'notice', bob + ' is now ' + robert);
  await waitUsers(a, [ann, robert]);
  await say(b, 'renamed');
  await waitLine(a, 'msg', 'renamed');
  la = await lines(a);
  var rejoined = la.filter(function (l) { return l.text.indexOf(robert + ' joined') >= 0; });
  var said = la.filter(function (l) { return l.text === 'renamed'; })[0];
  check(rejoined.length === 0 && said.nick === robert, 'a rename is one notice, no rejoin', JSON.stringify(la.slice(-4)));

  // A 1,500-character word wraps; nothing leaves the screen, at desktop and
  // phone width.
  var word = 'z'.repeat(1500);
  await say(b, word);
  await waitLine(a, 'msg', word);
  await waitLine(b, 'msg', word);
  for (var [size, phone, label] of [[DESKTOP, false, 'desktop'], [PHONE, true, 'phone']]) {
    for (var p2 of [a, b]) {
      await p2.setViewportSize(size);
      await p2.waitForTimeout(100);
      var probs = await layoutProblems(p2, phone);
      if (phone) {
        await p2.click('#people-toggle');
        var list = await p2.evaluate(function () {
          var li = document.querySelector('#users li');
          var r = li.getBoundingClientRect();
          var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return r.height > 0 && r.bottom <= innerHeight && r.right <= innerWidth && li.contains(hit);
        });
        if (!list) probs.push('the user list does not open on screen');
        await p2.click('#people-toggle');
      }
      check(probs.length === 0, 'page ' + p2.label + ' at ' + label + ' width (' + size.width + ' px): a ' + word.length +
        '-character word wraps, every control and the user list on screen', probs.join('; '));
    }
  }
  await a.setViewportSize(PHONE);
  await a.click('#people-toggle');
  await shoot(a, PHONE, 'chat-' + tag + '-phone');
  await a.click('#people-toggle');
  await shoot(a, DESKTOP, 'chat-' + tag + '-desktop');

  // Reloading b throws nothing, and b's old session leaves the room at once
  // (long before the close timeout: the test's is 20 s). LEAVE_MS leaves
  // room for race-detector builds on a loaded CI machine.
  var before = b.errors.length;
  var t0 = Date.now();
  await b.reload({ waitUntil: 'domcontentloaded' });
  await waitLine(a, 'notice', robert + ' left', LEAVE_MS).catch(function () {});
  var gone = Date.now() - t0;
  await waitStatus(b, 'connected', 'connected via ' + tb);
  await b.waitForTimeout(500);
  check(b.errors.length === before, 'reloading the ' + tb + ' page throws no console error', b.errors.slice(before).join('; '));
  check(gone < LEAVE_MS && (await usersOf(a)).length === 1, 'the reloaded page left the user list at once (' + gone + ' ms)', String(gone));

  // Closing b: its session ends now, not after the close timeout.
  await enter(b, bob);
  await waitUsers(a, [ann, bob]);
  t0 = Date.now();
  // As a user closes a tab: the page's unload handlers run (pagehide sends
  // the beacon that ends the session). Chromium drops a closing
  // jsonp-polling page's beacon now and then (2 closes in 10); the gateway
  // then ends the session because the page's parked poll was cut.
  var closed = new Promise(function (resolve) { b.once('close', resolve); });
  await b.close({ runBeforeUnload: true });
  await closed;
  var closedOK = await waitUsers(a, [ann], LEAVE_MS).then(function () { return true; }, function () { return false; });
  check(closedOK, 'a closed ' + tb + ' page leaves the user list at once (' + (Date.now() - t0) + ' ms)', 'still listed after ' + LEAVE_MS + ' ms');
  check(a.errors.length === 0, 'page a logged no console error (a favicon 404 would show here)', a.errors.join('; '));
  check(a.httpErrors.length === 0 && b.httpErrors.length === 0, 'no request of the pages answered with an HTTP error',
    a.httpErrors.concat(b.httpErrors).join('; '));
  await a.close();
}

async function faults(browser) {
  var url = opt('url');
  var a = await open(browser, 'a', url + '/?transport=websocket');
  var b = await open(browser, 'b', url + '/?transport=xhr-polling');
  await waitStatus(a, 'connected', 'websocket');
  await waitStatus(b, 'connected', 'xhr-polling');
  await enter(a, 'ann');
  await enter(b, 'bob');
  await waitUsers(a, ['ann', 'bob']);
  await waitUsers(b, ['ann', 'bob']);

  // kill -9 of the gateway holding a's websocket: a reconnects through the
  // balancer, re-sends its nickname and room and says so; b lists ann once.
  var sid = await a.evaluate(function () { return window.chat.socket.socket.sessionid; });
  await ask('kill-gateway ' + sid);
  await waitLine(a, 'info', 'Reconnected via websocket: rejoined lobby as ann.');
  var s = await statusOf(a);
  var sid2 = await a.evaluate(function () { return window.chat.socket.socket.sessionid; });
  check(s.phases.some(function (x) { return x.indexOf('reconnecting | reconnecting via websocket') === 0; }) &&
    s.phase === 'connected' && sid2 !== sid,
  'after the kill the page showed reconnecting via websocket, then connected with a new session', JSON.stringify(s));
  await waitUsers(a, ['ann', 'bob']);
  await waitUsers(b, ['ann', 'bob']);
  await waitLine(b, 'notice', 'ann is back');
  result(true, 'the page rejoined its room with its nickname, said so; the other page lists it once ("ann is back")');
  await say(b, 'still here after the kill');
  await waitLine(a, 'msg', 'still here after the kill');
  await say(a, 'me too');
  await waitLine(b, 'msg', 'me too');
  result(true, 'both pages chat after the kill (the polling page kept its session through the balancer)');

  // Now a cannot reconnect for a while (its handshakes are refused): it
  // shows reconnecting, then offline, and queues what is typed. Meanwhile
  // its session on the dead gateway is ended (gateway_lost, within 4 s of
  // the kill), so b lists ann no more, and bob becomes bobby: a's list must
  // not keep the old name.
  var refuse = function (route) { return route.abort(); };
  await a.route(/\/socket\.io\/1\/\?/, refuse);
  await ask('kill-gateway ' + sid2);
  await waitStatus(a, 'reconnecting', 'websocket');
  var stale = await a.evaluate(function () {
    return { users: document.querySelectorAll('#users li').length, note: document.getElementById('users-note').textContent };
  });
  check(stale.users === 0 && /Reconnecting/.test(stale.note), 'while reconnecting the user list is not shown as current', JSON.stringify(stale));
  await waitStatus(a, 'offline', 'websocket');
  s = await statusOf(a);
  check(/^offline, next try via websocket in \d+ s$/.test(s.text), 'after failed attempts the page says offline, with the transport', s.text);
  await say(a, 'queued one');
  await say(a, 'queued two');
  var q = await a.evaluate(function () {
    return {
      tags: Array.from(document.querySelectorAll('#messages li.pending .tag')).map(function (t) { return t.textContent; }),
      hint: document.getElementById('hint').textContent,
    };
  });
  check(q.tags.join(',') === 'queued,queued' && /queued and sent when the connection is back \(2 queued\)/.test(q.hint),
    'lines typed while offline are queued, and the page says so', JSON.stringify(q));
  await shoot(a, PHONE, 'chat-offline-phone');
  await shoot(a, DESKTOP, 'chat-offline-desktop');
  await setNick(b, 'bobby');
  await waitUsers(b, ['bobby']);
  await waitLine(b, 'notice', 'ann left');
  await a.unroute(/\/socket\.io\/1\/\?/, refuse);
  await waitStatus(a, 'connected', 'connected via websocket', 30000);
  await waitLine(b, 'msg', 'queued two');
  var lb = await lines(b);
  var order = lb.filter(function (l) { return /queued (one|two)/.test(l.text); }).map(function (l) { return l.text; });
  check(order.join(',') === 'queued one,queued two', 'the queued lines were sent once, in order, after the rejoin', JSON.stringify(order));
  await a.waitForFunction(function () { return window.chat.queue.length === 0 && !document.querySelector('#messages li.pending'); }, null, { timeout: WAIT });
  result(true, 'the sender\'s queued lines are confirmed (no line left pending)');
  await waitUsers(a, ['ann', 'bobby']);
  await waitUsers(b, ['ann', 'bobby']);
  result(true, 'after the reconnect the user list is fresh (bobby, not bob) on both pages');
  var ann = (await lines(a)).filter(function (l) { return l.text.indexOf('rejoined lobby as ann') >= 0; });
  check(ann.length === 2, 'each reconnect said it rejoined', JSON.stringify(ann));
  await shoot(a, DESKTOP, 'chat-faults-desktop');
  await shoot(b, PHONE, 'chat-faults-phone');

  // Redis restarted empty: every session is gone. The polling pages learn
  // it from their next request (7:::1+0); the websocket page's gateway
  // finds its route stream gone and closes the websocket (without 0::).
  var c = await open(browser, 'c', url + '/?transport=jsonp-polling');
  await waitStatus(c, 'connected', 'jsonp-polling');
  await enter(c, 'carol');
  await waitUsers(b, ['ann', 'bobby', 'carol']);
  await ask('redis-restart');
  await waitLine(a, 'info', 'Reconnected via websocket: rejoined lobby as ann.', 40000);
  await waitLine(b, 'info', 'Reconnected via xhr-polling: rejoined lobby as bobby.', 40000);
  await waitLine(c, 'info', 'Reconnected via jsonp-polling: rejoined lobby as carol.', 40000);
  await waitUsers(a, ['ann', 'bobby', 'carol']);
  await waitUsers(b, ['ann', 'bobby', 'carol']);
  await waitUsers(c, ['ann', 'bobby', 'carol']);
  await say(c, 'after the redis restart');
  await waitLine(a, 'msg', 'after the redis restart');
  await waitLine(b, 'msg', 'after the redis restart');
  await say(b, 'indeed');
  await waitLine(c, 'msg', 'indeed');
  var booted = (await lines(a)).concat(await lines(b), await lines(c)).filter(function (l) { return /\berror\b/.test(l.cls); });
  check(booted.length === 0, 'after Redis came back empty the websocket and polling pages reconnected (not "ended by the server"), rejoined, said so, and chat',
    JSON.stringify(booted));

  // Only network errors are expected in the console here (refused
  // handshakes, a dropped websocket), never an exception.
  var bad = a.errors.concat(b.errors, c.errors).filter(function (e) {
    return !/^console: (Failed to load resource|WebSocket connection to .* failed)/.test(e);
  });
  check(bad.length === 0, 'no exception or unexpected console error through the faults', bad.join('; '));
  await b.close();
  await c.close();
}

async function restart(browser) {
  var url = opt('url');
  var a = await open(browser, 'a', url + '/?transport=websocket');
  var b = await open(browser, 'b', url + '/?transport=xhr-polling');
  await waitStatus(a, 'connected', 'websocket');
  await waitStatus(b, 'connected', 'xhr-polling');
  await enter(a, 'ann', 'kitchen');
  await enter(b, 'bob', 'kitchen');
  await waitUsers(a, ['ann', 'bob']);
  // The whole demo dies (kill -9) and comes back on the same address,
  // with nothing of its state.
  await ask('restart');
  await waitLine(a, 'info', 'Reconnected via websocket: rejoined kitchen as ann.', 40000);
  await waitLine(b, 'info', 'Reconnected via xhr-polling: rejoined kitchen as bob.', 40000);
  var sa = await statusOf(a), sb = await statusOf(b);
  check([sa, sb].every(function (s) { return s.phase === 'connected' && s.phases.some(function (x) { return /^(reconnecting|offline) \| /.test(x); }); }),
    'after the demo restarted both pages showed the outage, then rejoined their room with their nicknames and said so',
    JSON.stringify([sa, sb]));
  await waitUsers(a, ['ann', 'bob']);
  await waitUsers(b, ['ann', 'bob']);
  await say(a, 'we are back');
  await waitLine(b, 'msg', 'we are back');
  result(true, 'the user lists are whole again and the pages chat');
  var bad = a.errors.concat(b.errors).filter(function (e) {
    return !/^console: (Failed to load resource|WebSocket connection to .* failed)/.test(e);
  });
  check(bad.length === 0, 'no exception or unexpected console error through the restart', bad.join('; '));
  await a.close();
  await b.close();
}

async function refused(browser) {
  var a = await open(browser, 'a', opt('url') + '/?transport=xhr-polling');
  var want = /^offline via xhr-polling: the server refused the connection \(handshake bad origin\)$/;
  await waitStatus(a, 'offline', 'refused');
  var s = await statusOf(a);
  check(want.test(s.text) && await a.isVisible('#retry'),
    'a handshake refused with 403 is said, with a Reconnect button (the 0.9 client would stay "connecting" for good)', JSON.stringify(s));
  await a.click('#retry');
  await a.waitForFunction(function () { return window.__phases.filter(function (p) { return /refused/.test(p); }).length >= 1 && document.getElementById('status').dataset.phase === 'offline' && !document.getElementById('retry').hidden; }, null, { timeout: WAIT });
  s = await statusOf(a);
  check(want.test(s.text) && s.phases.some(function (p) { return /^reconnecting \| /.test(p); }),
    'Reconnect tries again and is refused again, said the same way', JSON.stringify(s));
  var bad = a.errors.filter(function (e) { return !/^console: Failed to load resource/.test(e); });
  check(bad.length === 0, 'no exception or unexpected console error', bad.join('; '));
  await a.close();
}

async function noworker(browser) {
  var a = await open(browser, 'a', opt('url') + '/?transport=websocket');
  await waitStatus(a, 'connected', 'websocket');
  var t0 = Date.now();
  await setNick(a, 'ann');
  await waitLine(a, 'error', 'The server did not answer “set nickname ann” within 5 s. Is the chat worker running?', 15000);
  var took = Date.now() - t0;
  check(took >= 4500 && took < 9000, 'with no worker running, "Set" tells the user the server did not answer (' + took + ' ms)', String(took));
  var s = await statusOf(a);
  check(s.phase === 'connected' && !(await a.evaluate(function () { return window.chat.state.entered; })),
    'the page stays connected and not in a room', JSON.stringify(s));
  await shoot(a, PHONE, 'chat-noworker-phone');
  await shoot(a, DESKTOP, 'chat-noworker-desktop');
  check(a.errors.length === 0, 'no console error', a.errors.join('; '));
  await a.close();
}

(async function () {
  var suites = { pair: pair, faults: faults, restart: restart, noworker: noworker, refused: refused };
  var suite = suites[opt('suite', 'pair')];
  var browser = await playwright.chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  var timer = setTimeout(function () { result(false, 'suite', 'global timeout'); finish(browser); }, 150000);
  try {
    if (!suite) throw new Error('unknown suite ' + opt('suite'));
    await suite(browser);
  } catch (e) {
    result(false, opt('suite', 'pair'), e.message.split('\n')[0]);
    for (var p of pages) {
      if (p.isClosed()) continue;
      try {
        var s = await statusOf(p), l = await lines(p);
        console.log('# page ' + p.label + ': ' + JSON.stringify(s) + '\n#   users ' + JSON.stringify(await usersOf(p)) +
          '\n#   errors ' + JSON.stringify(p.errors) + '\n#   lines\n' + l.slice(-15).map(function (x) {
          return '#     ' + x.cls + ' ' + x.nick + ' ' + x.text.slice(0, 100) + ' ' + x.tag;
        }).join('\n') + '\n#   requests (ms since the page opened)\n' + p.requests.map(function (r) {
          return '#     ' + r.start + ' ' + r.url.slice(0, 100) + ': ' + r.end;
        }).join('\n'));
      } catch (e2) { console.log('# page ' + p.label + ': ' + e2.message); }
    }
  }
  clearTimeout(timer);
  finish(browser);
})();

async function finish(browser) {
  console.log(passed + ' passed, ' + failed + ' failed');
  try { await browser.close(); } catch (e) { /* already closed */ }
  process.exit(failed ? 1 : 0);
}
