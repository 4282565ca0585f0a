// Steady traffic from official socket.io-client 0.9.16 clients, for failure
// tests: each client emits numbered echo events with acks in a closed loop
// and checks the acks come back in order.
//
//   node node/steady.js --url URL --transport xhr-polling --clients 6 --seconds 10 --expect same-session|reconnect
//
// same-session: every client keeps its first session (no disconnect, no
// reconnect), and no ack is lost, duplicated or out of order.
// reconnect: clients may lose their transport; the official client's own
// reconnect must bring each one back, and acks must resume.
// reconnected: as reconnect, and every client must have lost its session
// and been reconnected (a new session id) by its own client, and had more
// than 5 acks on its last session.
// no-silent-loss: as reconnect, and every client either kept its session
// and lost no ack, or was reconnected (a new session id) and had more than
// 5 acks on its last session.
// Prints a JSON line per client ("# {...}"), ok/not ok lines and "N passed, M failed".
'use strict';

var io = require('socket.io-client');
var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }
var url = opt('url'), transport = opt('transport', 'xhr-polling');
var clients = +opt('clients', 6), seconds = +opt('seconds', 10), expect = opt('expect', 'same-session');
io.transports = [transport];

var passed = 0, failed = 0;
function check(ok, name, why) {
  if (ok) { passed++; console.log('ok - ' + name); } else { failed++; console.log('not ok - ' + name + ': ' + why); }
}

function client(i) {
  var st = { i: i, sids: [], disconnects: 0, reconnects: 0, sent: 0, acked: 0, ackedLast: 0, outOfOrder: 0, duplicates: 0, connected: false };
  var s = io.connect(url, { 'force new connection': true, 'reconnection delay': 200, 'max reconnection attempts': 20 });
  var next = 1, lastAck = 0, inflight = false, stop = false;
  function send() {
    if (stop || inflight || !st.connected) return;
    inflight = true;
    var n = next++;
    st.sent++;
    var timer = setTimeout(function () { inflight = false; send(); }, 5000); // lost: move on
    s.emit('echo', n, function (got) {
      clearTimeout(timer);
      if (got <= lastAck) st.duplicates++;
      else if (got !== lastAck + 1 && expect === 'same-session') st.outOfOrder++;
      if (got > lastAck) { lastAck = got; st.acked++; st.ackedLast++; }
      inflight = false;
      setTimeout(send, 20);
    });
  }
  s.on('connect', function () {
    st.connected = true;
    st.sids.push(s.socket.sessionid);
    lastAck = next - 1; // after a reconnect, acks resume from the next number
    st.ackedLast = 0;
    inflight = false;
    send();
  });
  s.on('disconnect', function () { st.connected = false; st.disconnects++; });
  s.on('reconnect', function () { st.reconnects++; });
  return { st: st, stop: function () { stop = true; }, socket: s };
}

var all = [];
for (var i = 0; i < clients; i++) all.push(client(i));
setTimeout(function () {
  all.forEach(function (c) { c.stop(); });
  setTimeout(report, 1500);
}, seconds * 1000);

function report() {
  all.forEach(function (c) {
    var st = c.st;
    console.log('# ' + JSON.stringify(st));
    var name = transport + ' client ' + st.i;
    if (expect === 'same-session') {
      check(st.sids.length === 1 && st.disconnects === 0, name + ' kept its session', JSON.stringify(st.sids) + ' disconnects ' + st.disconnects);
      check(st.acked === st.sent && st.outOfOrder === 0 && st.duplicates === 0, name + ' lost, duplicated or reordered nothing',
        'sent ' + st.sent + ' acked ' + st.acked + ' out of order ' + st.outOfOrder + ' duplicates ' + st.duplicates);
    } else {
      check(st.connected, name + ' is connected at the end', 'disconnects ' + st.disconnects);
      check(st.duplicates === 0, name + ' got no duplicate ack', 'duplicates ' + st.duplicates);
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
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
}
