// Connects N official socket.io-client 0.9.16 clients at once, each with
// the client's default options (reconnect on), and reports what each one
// saw: when it connected and whether an acked echo came back, or the error
// it got and whether it ever tried again. The gateway's admission control
// is what is under test (issue 11 item 2): a refused first handshake is
// fatal to the 0.9 client, so excess handshakes must be held, not refused.
//
//   node node/handshake-burst.js --url http://127.0.0.1:PORT [--clients 8]
//       [--transport websocket|xhr-polling] [--linger MS] [--timeout MS]
//
// --linger (default 2000) is how long to keep watching after the last
// client settled, for late retries. Prints one JSON object per client
//   {"client":i,"connectMs":..,"echo":true,"error":null,"events":[...]}
// and a last line "summary {json}" with connected, echoed, errors and
// lastConnectMs. Exits 0 when it ran to the end (the Go test judges the
// result), 2 on bad usage, 1 on the global timeout.
'use strict';

var io = require('socket.io-client');

var args = process.argv.slice(2);
function opt(name, def) {
  var i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
function usage(why) {
  console.error('handshake-burst.js: ' + why + '\nusage: node node/handshake-burst.js --url URL [--clients N] ' +
    '[--transport websocket|xhr-polling] [--linger MS] [--timeout MS]');
  process.exit(2);
}
var url = (opt('url') || '').replace(/\/+$/, '');
var n = +opt('clients', 8);
var transport = opt('transport', 'websocket');
var linger = +opt('linger', 2000);
var globalTimeout = +opt('timeout', 30000);
if (!/^https?:\/\/[^/]+$/.test(url)) usage('not a server URL: ' + url);
if (!(n > 0) || !(linger >= 0) || !(globalTimeout > 0)) usage('bad numbers');
if (transport !== 'websocket' && transport !== 'xhr-polling') usage('transport must be websocket or xhr-polling');

// The 'transports' option is merged index-wise into the default list, so
// replace the list itself before connecting.
io.transports = [transport];

var start = Date.now();
function ms() { return Date.now() - start; }

function client(i) {
  return new Promise(function (resolve) {
    var r = { client: i, connectMs: null, echo: false, error: null, events: [] };
    var settled = false;
    function settle() { if (!settled) { settled = true; resolve(r); } }
    var s = io.connect(url, { 'force new connection': true });
    r.socket = s;
    ['connecting', 'connect_failed', 'reconnecting', 'reconnect', 'reconnect_failed', 'disconnect'].forEach(function (ev) {
      s.on(ev, function () { r.events.push(ev + '@' + ms()); });
    });
    s.on('error', function (e) {
      r.events.push('error@' + ms());
      if (r.error === null) r.error = String(e && e.message || e);
      settle();
    });
    s.on('connect', function () {
      r.events.push('connect@' + ms());
      if (r.connectMs !== null) return;
      r.connectMs = ms();
      s.emit('echo', 'hello', i, function (a, b) {
        r.echo = a === 'hello' && b === i;
        settle();
      });
    });
  });
}

var sleep = require('./promise-lib').sleep;

(async function () {
  setTimeout(function () { console.log('global timeout after ' + globalTimeout + ' ms'); process.exit(1); }, globalTimeout);
  var cs = [];
  for (var i = 0; i < n; i++) cs.push(client(i)); // all at once
  var rs = await Promise.all(cs);
  await sleep(linger); // late retries would show up in the events
  var sum = { clients: n, connected: 0, echoed: 0, errors: 0, lastConnectMs: 0 };
  rs.forEach(function (r) {
    if (r.connectMs !== null) { sum.connected++; sum.lastConnectMs = Math.max(sum.lastConnectMs, r.connectMs); }
    if (r.echo) sum.echoed++;
    if (r.error !== null) sum.errors++;
    var s = r.socket;
    delete r.socket;
    console.log(JSON.stringify(r));
    try { s.socket.disconnect(); } catch (e) { /* never connected */ }
  });
  console.log('summary ' + JSON.stringify(sum));
  await sleep(200); // let the disconnects go out
  process.exit(0);
})();
