// Checks every item of the echo contract with the official
// socket.io-client 0.9.16, over one transport, against one server or
// several (clients and, for polling, requests spread over the URLs only as
// far as the client allows: each client uses one URL).
//
//   node node/echo-contract.js --urls http://127.0.0.1:8001,http://127.0.0.1:8002 --transport websocket [--reference]
//
// Prints "ok - …" / "not ok - …" per check and a last line "N passed, M
// failed"; exits 0 only when nothing failed. --reference marks the checks
// that the reference server is known to fail as expected failures.
'use strict';

var io = require('socket.io-client');

var args = process.argv.slice(2);
function opt(name, def) {
  var i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
}
var urls = (opt('urls') || opt('url') || '').split(',').filter(Boolean);
var transport = opt('transport', 'websocket');
var reference = args.indexOf('--reference') >= 0;
if (!urls.length) {
  console.error('usage: echo-contract.js --urls URL[,URL...] --transport websocket|xhr-polling [--reference]');
  process.exit(2);
}
// The transports option is merged index-wise into the default list, so set
// the list itself before connecting.
io.transports = [transport];

var passed = 0, failed = 0;
function ok(name, note) { passed++; console.log('ok - ' + name + (note ? ' # ' + note : '')); }
function notOk(name, why) { failed++; console.log('not ok - ' + name + ': ' + why); }

function timeout(ms, what) {
  return new Promise(function (_, reject) {
    setTimeout(function () { reject(new Error('timeout: ' + what)); }, ms);
  });
}
function within(p, what) { return Promise.race([p, timeout(10000, what)]); }

function connect(url, ns) {
  return within(new Promise(function (resolve, reject) {
    var s = io.connect(url + ns, { 'force new connection': true, reconnect: false });
    s.once('welcome', function (w) { resolve({ s: s, welcome: w }); });
    s.once('error', function (e) { reject(new Error('error ' + e)); });
    s.once('connect_failed', function () { reject(new Error('connect_failed')); });
  }), 'connect ' + url + ns);
}
function once(s, ev) {
  return within(new Promise(function (resolve) {
    s.once(ev, function () { resolve(Array.prototype.slice.call(arguments)); });
  }), 'event ' + ev);
}
function emitAck(s) {
  var a = Array.prototype.slice.call(arguments, 1);
  return within(new Promise(function (resolve) {
    s.emit.apply(s, a.concat([function () { resolve(Array.prototype.slice.call(arguments)); }]));
  }), 'ack of ' + a[0]);
}
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
function sessionId(s) { return s.socket.sessionid; }

async function check(name, fn, knownReferenceBug) {
  try {
    await fn();
    ok(name);
  } catch (e) {
    if (reference && knownReferenceBug) ok(name, 'known reference bug: ' + e.message);
    else notOk(name, e.message);
  }
}
function expect(cond, why) { if (!cond) throw new Error(why); }

async function phase(ns) {
  var p = '[' + (ns || 'default') + ' ' + transport + '] ';
  var cs = [];
  await check(p + 'connect and welcome', async function () {
    for (var i = 0; i < 3; i++) cs.push(await connect(urls[i % urls.length], ns));
    cs.forEach(function (c) {
      expect(c.welcome && c.welcome.sid === sessionId(c.s) && c.welcome.ns === ns,
        'welcome ' + JSON.stringify(c.welcome) + ' for ' + sessionId(c.s));
    });
  });
  if (cs.length < 3) return;
  var a = cs[0].s, b = cs[1].s, c = cs[2].s;
  await check(p + 'echo with ack', async function () {
    var got = await emitAck(a, 'echo', 'x', 42, { o: [1] });
    expect(same(got, ['x', 42, { o: [1] }]), JSON.stringify(got));
  });
  await check(p + 'echo with ack, unicode and </script>', async function () {
    var s = '😀 é </script> "q" \\ \n';
    var got = await emitAck(a, 'echo', s);
    expect(same(got, [s]), JSON.stringify(got));
  });
  await check(p + 'echo with ack, U+2028 and U+2029', async function () {
    var s = 'a\u2028b\u2029c';
    var got = await emitAck(a, 'echo', s);
    expect(same(got, [s]), JSON.stringify(got));
  }, true);
  await check(p + 'echo without ack', async function () {
    var w = once(a, 'echo');
    a.emit('echo', 'plain', 1);
    var got = await w;
    expect(same(got, ['plain', 1]), JSON.stringify(got));
  });
  await check(p + 'message', async function () {
    var w = once(a, 'message');
    a.send('hello');
    var got = await w;
    expect(same(got, ['hello']), JSON.stringify(got));
  });
  await check(p + 'json message', async function () {
    var w = once(a, 'message');
    a.json.send({ k: [1, 2] });
    var got = await w;
    expect(same(got, [{ k: [1, 2] }]), JSON.stringify(got));
  });
  await check(p + 'join and to', async function () {
    expect(same(await emitAck(a, 'join', 'room1'), [true]), 'join a');
    expect(same(await emitAck(b, 'join', 'room1'), [true]), 'join b');
    var aGot = false;
    a.once('relay', function () { aGot = true; });
    var w = once(b, 'relay');
    expect(same(await emitAck(a, 'to', 'room1', { n: 1 }), [true]), 'to ack');
    var got = await w;
    expect(same(got, [{ n: 1 }, sessionId(a)]), JSON.stringify(got));
    await new Promise(function (r) { setTimeout(r, 200); });
    expect(!aGot, 'the sender got its own relay');
  });
  await check(p + 'leave', async function () {
    expect(same(await emitAck(b, 'leave', 'room1'), [true]), 'leave');
    var bGot = false;
    b.once('relay', function () { bGot = true; });
    var w = once(a, 'relay');
    expect(same(await emitAck(c, 'to', 'room1', 'only-a'), [true]), 'to ack');
    var got = await w;
    expect(same(got, ['only-a', sessionId(c)]), JSON.stringify(got));
    await new Promise(function (r) { setTimeout(r, 200); });
    expect(!bGot, 'a socket that left still got a relay');
  });
  await check(p + 'shout', async function () {
    var cGot = false;
    c.once('shout', function () { cGot = true; });
    var wa = once(a, 'shout'), wb = once(b, 'shout');
    expect(same(await emitAck(c, 'shout', 'hey'), [true]), 'shout ack');
    expect(same(await wa, ['hey']) && same(await wb, ['hey']), 'shout payload');
    await new Promise(function (r) { setTimeout(r, 200); });
    expect(!cGot, 'the sender got its own shout');
  });
  await check(p + 'whoami', async function () {
    var got = await emitAck(b, 'whoami');
    expect(same(got, [sessionId(b)]), JSON.stringify(got));
  });
  await check(p + 'count', async function () {
    var got = await emitAck(b, 'count');
    expect(same(got, [3]), JSON.stringify(got));
  });
  await check(p + 'ask and answer', async function () {
    c.once('question', function (q, fn) { expect(q === 'q?', 'question ' + q); fn('a!'); });
    var w = once(c, 'answer');
    c.emit('ask', 'q?');
    var got = await w;
    expect(same(got, ['a!']), JSON.stringify(got));
  });
  await check(p + 'bye', async function () {
    var w = once(a, 'disconnect');
    a.emit('bye');
    var got = await w;
    // The whole session ends as 'booted' (no reconnect); a namespace's
    // disconnect event carries no reason in the 0.9 client.
    if (ns === '') expect(got[0] === 'booted', 'disconnect reason ' + got[0]);
  });
  cs.forEach(function (x) { try { x.s.disconnect(); } catch (e) { /* already gone */ } });
  if (ns === '') {
    cs.forEach(function (x) { try { x.s.socket.disconnect(); } catch (e) { /* gone */ } });
  }
  await new Promise(function (r) { setTimeout(r, 500); });
}

(async function () {
  var guard = setTimeout(function () { notOk('suite', 'global timeout'); finish(); }, 120000);
  await phase('');
  await phase('/chat');
  clearTimeout(guard);
  finish();
})();

function finish() {
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
}
