// Bursts of emits from official socket.io-client 0.9.16 clients over
// xhr-polling, optionally under a coarse clock: the 0.9 client frames every
// packet emitted while a POST is in flight into its next POST, and stamps
// each request with t=+new Date, which repeats when the clock ticks coarsely
// (old IE every ~16 ms, privacy modes at 100 ms).
//
//   node node/burst.js --urls URL1,URL2 [--clients 3] [--burst 1001] [--tick 100]
//
// Each client emits --burst acked "echo" events and --burst plain ones in
// one synchronous loop (the echo app acks the first and emits "echo" back
// for the second), then checks that every ack and every echo arrived exactly
// once, the echoes in order, and that it kept its first session. --tick N
// makes Date (new Date() and Date.now()) advance in steps of N ms.
// Prints a JSON line per client ("# {...}"), ok/not ok lines and
// "N passed, M failed"; exits 0 only when nothing failed.
'use strict';

var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }
var urls = (opt('urls') || opt('url') || '').split(',').filter(Boolean);
var clients = +opt('clients', 3), burst = +opt('burst', 1001), tick = +opt('tick', 0);
var timeout = +opt('timeout', 60000);
if (!urls.length || !(burst > 0) || !(clients > 0)) {
  console.error('usage: node node/burst.js --urls URL1,URL2 [--clients N] [--burst N] [--tick MS]');
  process.exit(2);
}

if (tick > 0) {
  // A coarse clock, installed before the client is loaded.
  var RealDate = Date;
  var coarse = function () { return Math.floor(RealDate.now() / tick) * tick; };
  var CoarseDate = function (a, b, c, d, e, f, g) {
    if (!(this instanceof CoarseDate)) return new RealDate(coarse()).toString();
    switch (arguments.length) {
      case 0: return new RealDate(coarse());
      case 1: return new RealDate(a);
      default: return new RealDate(a, b, c || 1, d || 0, e || 0, f || 0, g || 0);
    }
  };
  CoarseDate.now = coarse;
  CoarseDate.UTC = RealDate.UTC;
  CoarseDate.parse = RealDate.parse;
  CoarseDate.prototype = RealDate.prototype;
  global.Date = CoarseDate;
}

var io = require('socket.io-client');
io.transports = ['xhr-polling'];

var passed = 0, failed = 0;
function check(ok, name, why) {
  if (ok) { passed++; console.log('ok - ' + name); } else { failed++; console.log('not ok - ' + name + ': ' + why); }
}

function client(i) {
  return new Promise(function (resolve) {
    var st = { i: i, sids: [], disconnects: 0, errors: [], acks: 0, ackDup: 0, ackWrong: 0,
      echoes: 0, echoDup: 0, echoOutOfOrder: 0 };
    var acked = {}, lastEcho = 0, done = false;
    var s = io.connect(urls[i % urls.length], { 'force new connection': true, reconnect: false });
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(st);
      s.disconnect();
    }
    var timer = setTimeout(finish, timeout);
    function maybeDone() { if (st.acks === burst && st.echoes === burst) finish(); }
    s.on('error', function (e) { st.errors.push(String(e && e.message || e)); });
    s.on('disconnect', function () { if (!done) st.disconnects++; });
    s.on('echo', function (n) {
      if (n <= lastEcho) st.echoDup++;
      else if (n !== lastEcho + 1) st.echoOutOfOrder++;
      if (n > lastEcho) { lastEcho = n; st.echoes++; }
      maybeDone();
    });
    s.once('welcome', function () {
      st.sids.push(s.socket.sessionid);
      for (var n = 1; n <= burst; n++) {
        (function (n) {
          s.emit('echo', n, function (got) {
            if (acked[n]) st.ackDup++;
            else if (got !== n) st.ackWrong++;
            else { acked[n] = true; st.acks++; }
            maybeDone();
          });
        })(n);
        s.emit('echo', n);
      }
    });
  });
}

var all = [];
for (var i = 0; i < clients; i++) all.push(client(i));
Promise.all(all).then(function (sts) {
  sts.forEach(function (st) {
    console.log('# ' + JSON.stringify(st));
    var c = 'client ' + st.i;
    check(st.sids.length === 1 && st.disconnects === 0 && st.errors.length === 0, c + ' kept its session',
      st.sids.length + ' sessions, ' + st.disconnects + ' disconnects, errors ' + JSON.stringify(st.errors));
    check(st.acks === burst && st.ackDup === 0 && st.ackWrong === 0, c + ' got every ack once',
      st.acks + '/' + burst + ' acks, ' + st.ackDup + ' duplicated, ' + st.ackWrong + ' wrong');
    check(st.echoes === burst && st.echoDup === 0 && st.echoOutOfOrder === 0, c + ' got every echo once, in order',
      st.echoes + '/' + burst + ' echoes, ' + st.echoDup + ' duplicated, ' + st.echoOutOfOrder + ' out of order');
  });
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
});
