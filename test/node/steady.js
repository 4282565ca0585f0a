// Steady traffic from official socket.io-client 0.9.16 clients, for failure
// tests: each client emits numbered echo events with acks in a closed loop
// and checks the acks come back in order.
//
//   node node/steady.js --url URL --transport xhr-polling --clients 6 --seconds 10 --expect same-session|reconnect [--plain]
//
// --plain: with each acked echo, a client also emits a plain (unacked) echo
// event, numbered on its own, which the echo app emits back; the client
// checks those come back once each and in order too.
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
// The clients and the checks are in node/steady-lib.js, which
// browser/steady.js runs in Chromium.
'use strict';

var io = require('socket.io-client');
var steady = require('./steady-lib');
var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }
var opts = {
  urls: [opt('url')], transport: opt('transport', 'xhr-polling'), clients: +opt('clients', 6),
  seconds: +opt('seconds', 10), expect: opt('expect', 'same-session'), plain: args.indexOf('--plain') >= 0,
};
io.transports = [opts.transport];

steady.run(io, opts, function (sts) {
  var r = steady.report(sts, opts, console.log);
  process.exit(r.failed ? 1 : 0);
});
