// Drives the fault paths of `worker -app http` (see
// test/integration/bridge_test.go) with the official socket.io-client
// 0.9.16: a signal the app fails once is answered once; a rejected one is
// answered at once with the app's error; a poison signal (the app always
// fails) does not keep other sessions, or its own later signals, from
// being answered.
//
//   node node/bridge-faults.js --url http://127.0.0.1:PORT [--check-timeout MS]
//
// Prints "ok - <name>" or "not ok - <name>: <why>" per check, "reject took
// <ms> ms", and a last line "N passed, M failed"; exits 0 only when
// nothing failed.
'use strict';

var io = require('socket.io-client');
var promises = require('./promise-lib');

var args = process.argv.slice(2);
function opt(name, def) {
  var i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
var url = (opt('url') || '').replace(/\/+$/, '');
var checkTimeout = +opt('check-timeout', 15000);
if (!/^https?:\/\/[^/]+$/.test(url)) { console.error('usage: node node/bridge-faults.js --url URL'); process.exit(2); }
io.transports = ['websocket'];

var passed = 0, failed = 0;
function within(p, what) { return promises.within(p, what, checkTimeout); }
var sleep = promises.sleep;
function argsOf(a) { return Array.prototype.slice.call(a); }
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
function expect(cond, why) { if (!cond) throw new Error(why); }
function connect() {
  return within(new Promise(function (resolve, reject) {
    var s = io.connect(url, { 'force new connection': true, reconnect: false });
    s.once('welcome', function () { resolve(s); });
    s.once('error', function (e) { reject(new Error('error ' + (e && e.message || e))); });
  }), 'welcome');
}
function emitAck(s) {
  var a = argsOf(arguments).slice(1);
  return within(new Promise(function (resolve) {
    s.emit.apply(s, a.concat([function () { resolve(argsOf(arguments)); }]));
  }), 'ack of ' + a[0]);
}
async function check(name, fn) {
  try { await fn(); passed++; console.log('ok - ' + name); } catch (e) { failed++; console.log('not ok - ' + name + ': ' + e.message); }
}

(async function () {
  var a, b;
  await check('connect', async function () { a = await connect(); b = await connect(); });
  if (!a || !b) { console.log(passed + ' passed, ' + (failed + 1) + ' failed'); process.exit(1); }

  await check('flaky: the app answers 500 then 200; the ack and the emit come once', async function () {
    var emits = [];
    a.on('flaky-emit', function (n) { emits.push(n); });
    var got = await emitAck(a, 'flaky');
    expect(same(got, ['ok', 2]), 'ack ' + JSON.stringify(got));
    await sleep(1000);
    expect(same(emits, [2]), 'flaky-emit received ' + JSON.stringify(emits));
  });

  await check('reject: the client ack gets the app\'s error at once', async function () {
    var t0 = Date.now();
    var got = await emitAck(a, 'reject', 'not a number');
    console.log('reject took ' + (Date.now() - t0) + ' ms');
    expect(same(got, [{ error: 'bad input' }]), 'ack ' + JSON.stringify(got));
  });

  await check('poison: the app always answers 500; other sessions and later signals are answered', async function () {
    a.emit('poison', 'x');
    var other = await emitAck(b, 'echo', 'from b');
    expect(same(other, ['from b']), 'b ack ' + JSON.stringify(other));
    var own = await emitAck(a, 'echo', 'after poison');
    expect(same(own, ['after poison']), 'a ack ' + JSON.stringify(own));
  });

  a.socket.disconnect(); b.socket.disconnect();
  await sleep(300);
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
})();
