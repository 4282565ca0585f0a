// The clients and checks of node/steady.js, shared with browser/steady.js,
// which runs the same clients in Chromium (the official client's jsonp-polling
// exists only in a browser). In Node, require() it; in a page, load it as a
// script: it defines window.steady.
//
// run(io, opts, done): opts.urls (client i connects to urls[i % length]),
// opts.clients, opts.seconds, opts.expect, opts.plain; calls done with one
// state object per client once the clients stopped (after opts.seconds)
// and what they had in flight arrived (at most 6 s more).
// report(states, opts, print): prints a JSON line per client ("# {...}"),
// ok/not ok lines and "N passed, M failed" with print, and returns
// {passed, failed}.
(function (exports) {
  'use strict';

  function client(io, i, url, opts) {
    var expect = opts.expect, plain = opts.plain;
    // connectAt: unix ms of each connect; firstAckAt: of the first ack on
    // each session (0 while none).
    var st = { i: i, sids: [], connectAt: [], firstAckAt: [], disconnects: 0, reconnects: 0, sent: 0, acked: 0, ackedLast: 0, outOfOrder: 0, duplicates: 0, connected: false,
      echoSent: 0, echoes: 0, echoDuplicates: 0, echoOutOfOrder: 0, unacked: [] };
    // pending: ack number -> [unix ms sent, session id]; what is left at the
    // end is reported as unacked (at most 10), to tell a loss from a late ack.
    var pending = {};
    var s = io.connect(url, { 'force new connection': true, 'reconnection delay': 200, 'max reconnection attempts': 20 });
    var next = 1, lastAck = 0, inflight = false, stop = false, nextEcho = 1, lastEcho = 0;
    s.on('echo', function (got) {
      if (got <= lastEcho) st.echoDuplicates++;
      else if (got !== lastEcho + 1 && expect === 'same-session') st.echoOutOfOrder++;
      if (got > lastEcho) { lastEcho = got; st.echoes++; }
    });
    function send() {
      if (stop || inflight || !st.connected) return;
      inflight = true;
      if (plain) {
        st.echoSent++;
        s.emit('echo', nextEcho++);
      }
      var n = next++;
      st.sent++;
      pending[n] = [Date.now(), s.socket.sessionid];
      var timer = setTimeout(function () { inflight = false; send(); }, 5000); // lost: move on
      s.emit('echo', n, function (got) {
        clearTimeout(timer);
        delete pending[got];
        if (got <= lastAck) st.duplicates++;
        else if (got !== lastAck + 1 && expect === 'same-session') st.outOfOrder++;
        if (got > lastAck) {
          lastAck = got; st.acked++; st.ackedLast++;
          if (st.firstAckAt.length && !st.firstAckAt[st.firstAckAt.length - 1]) st.firstAckAt[st.firstAckAt.length - 1] = Date.now();
        }
        inflight = false;
        setTimeout(send, 20);
      });
    }
    s.on('connect', function () {
      st.connected = true;
      st.sids.push(s.socket.sessionid);
      st.connectAt.push(Date.now());
      st.firstAckAt.push(0);
      lastAck = next - 1; // after a reconnect, acks and echoes resume from the next number
      lastEcho = nextEcho - 1;
      st.ackedLast = 0;
      inflight = false;
      send();
    });
    s.on('disconnect', function () { st.connected = false; st.disconnects++; });
    s.on('reconnect', function () { st.reconnects++; });
    return {
      st: st, stop: function () { stop = true; }, socket: s,
      finish: function () {
        st.unacked = Object.keys(pending).slice(0, 10).map(function (n) { return { n: +n, sentAt: pending[n][0], sid: pending[n][1] }; });
        return st;
      },
      // settled: no ack in flight on the current session (a client that took
      // an ack for lost after 5 s has two in flight; inflight tracks one) and,
      // where none may be lost, every echo back.
      settled: function () {
        var waiting = Object.keys(pending).some(function (n) { return pending[n][1] === s.socket.sessionid; });
        return !inflight && !waiting && (expect !== 'same-session' || st.echoes >= st.echoSent);
      },
    };
  }

  exports.run = function (io, opts, done) {
    var all = [];
    for (var i = 0; i < opts.clients; i++) all.push(client(io, i, opts.urls[i % opts.urls.length], opts));
    setTimeout(function () {
      all.forEach(function (c) { c.stop(); });
      // What is in flight gets up to 6 s to arrive (more than a client's
      // 5 s before it takes an ack for lost), then 0.5 s for late
      // duplicates.
      var until = Date.now() + 6000;
      (function settle() {
        if (Date.now() < until && !all.every(function (c) { return c.settled(); })) {
          setTimeout(settle, 100);
          return;
        }
        setTimeout(function () { done(all.map(function (c) { return c.finish(); })); }, 500);
      })();
    }, opts.seconds * 1000);
  };

  exports.report = function (sts, opts, print) {
    var passed = 0, failed = 0, expect = opts.expect, plain = opts.plain;
    function check(ok, name, why) {
      if (ok) { passed++; print('ok - ' + name); } else { failed++; print('not ok - ' + name + ': ' + why); }
    }
    sts.forEach(function (st) {
      print('# ' + JSON.stringify(st));
      var name = opts.transport + ' client ' + st.i;
      if (expect === 'same-session') {
        check(st.sids.length === 1 && st.disconnects === 0, name + ' kept its session', JSON.stringify(st.sids) + ' disconnects ' + st.disconnects);
        check(st.acked === st.sent && st.outOfOrder === 0 && st.duplicates === 0, name + ' lost, duplicated or reordered nothing',
          'sent ' + st.sent + ' acked ' + st.acked + ' out of order ' + st.outOfOrder + ' duplicates ' + st.duplicates);
        if (plain) {
          check(st.echoes === st.echoSent && st.echoOutOfOrder === 0 && st.echoDuplicates === 0, name + ' lost, duplicated or reordered no echo',
            'sent ' + st.echoSent + ' echoed ' + st.echoes + ' out of order ' + st.echoOutOfOrder + ' duplicates ' + st.echoDuplicates);
        }
      } else {
        check(st.connected, name + ' is connected at the end', 'disconnects ' + st.disconnects);
        check(st.duplicates === 0, name + ' got no duplicate ack', 'duplicates ' + st.duplicates);
        if (plain) check(st.echoDuplicates === 0, name + ' got no duplicate echo', 'duplicates ' + st.echoDuplicates);
        if (expect === 'no-silent-loss') {
          check((st.sids.length === 1 && st.disconnects === 0 && st.acked === st.sent) || (st.sids.length > 1 && st.ackedLast > 5),
            name + ' lost no ack on a session it kept, or was reconnected and talks',
            'sessions ' + JSON.stringify(st.sids) + ' sent ' + st.sent + ' acked ' + st.acked + ' acked on the last ' + st.ackedLast);
        }
        if (expect === 'reconnected') {
          check(st.sids.length > 1 && st.ackedLast > 5, name + ' was reconnected and talks on its new session',
            'sessions ' + JSON.stringify(st.sids) + ' acked on the last ' + st.ackedLast);
        }
      }
      check(st.acked > 5, name + ' made progress', 'acked ' + st.acked);
    });
    print(passed + ' passed, ' + failed + ' failed');
    return { passed: passed, failed: failed };
  };
})(typeof module !== 'undefined' && module.exports ? module.exports : (window.steady = {}));
