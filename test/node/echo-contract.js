// Checks every item of the echo contract (see reference/echo-server.js) with
// the official socket.io-client 0.9.16, over one transport, in the default
// namespace and in /chat, with three clients per namespace. With several
// URLs the clients are spread over the servers (client i uses URL i mod n),
// so rooms, broadcasts and counts must work across servers.
//
//   node node/echo-contract.js --url http://127.0.0.1:PORT --transport websocket|xhr-polling [--reference]
//   node node/echo-contract.js --urls URL1,URL2,URL3 --transport xhr-polling
//
// Options: --check-timeout MS (default 10000) per check, --timeout MS
// (default 120000) for the whole run.
//
// Prints "ok - <name>" or "not ok - <name>: <why>" per check and a last line
// "N passed, M failed"; exits 0 only when nothing failed (2 on bad usage).
// --reference is for the reference server: checks it is known to fail are
// then counted as passed and labelled "# known reference bug: ...". Without
// it (our own server) every check is strict.
'use strict';

var io = require('socket.io-client');
var promises = require('./promise-lib');

var args = process.argv.slice(2);
function opt(name, def) {
  var i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
function usage(why) {
  console.error('echo-contract.js: ' + why + '\nusage: node node/echo-contract.js --url URL | --urls URL1,URL2,... ' +
    '--transport websocket|xhr-polling [--reference] [--check-timeout MS] [--timeout MS]');
  process.exit(2);
}
var urls = (opt('urls') || opt('url') || '').split(',').map(function (u) { return u.trim().replace(/\/+$/, ''); }).filter(Boolean);
var transport = opt('transport', 'websocket');
var reference = args.indexOf('--reference') >= 0;
var checkTimeout = +opt('check-timeout', 10000);
var globalTimeout = +opt('timeout', 120000);
if (!urls.length) usage('no --url or --urls');
urls.forEach(function (u) { if (!/^https?:\/\/[^/]+$/.test(u)) usage('not a server URL: ' + u); });
// Only these two transports exist in the Node build of the 0.9 client.
if (transport !== 'websocket' && transport !== 'xhr-polling') usage('transport must be websocket or xhr-polling');
if (!(checkTimeout > 0) || !(globalTimeout > 0)) usage('timeouts are positive numbers of milliseconds');

// The 'transports' option is merged index-wise into the default list, so
// replace the list itself before connecting.
io.transports = [transport];

var passed = 0, failed = 0;
function ok(name, note) { passed++; console.log('ok - ' + name + (note ? ' # ' + note : '')); }
function notOk(name, why) { failed++; console.log('not ok - ' + name + ': ' + why); }

// within rejects when p has not settled after the check timeout.
function within(p, what) { return promises.within(p, what, checkTimeout); }
var sleep = promises.sleep;
function argsOf(a) { return Array.prototype.slice.call(a); }

function connect(url, ns) {
  return within(new Promise(function (resolve, reject) {
    var s = io.connect(url + ns, { 'force new connection': true, reconnect: false });
    s.once('welcome', function (w) { resolve({ s: s, welcome: w }); });
    s.once('error', function (e) { reject(new Error('error ' + oneLine(e && e.message || e))); });
    s.once('connect_failed', function () { reject(new Error('connect_failed')); });
  }), 'welcome from ' + url + ' in ' + (ns || '""'));
}
function once(s, ev) {
  return within(new Promise(function (resolve) {
    s.once(ev, function () { resolve(argsOf(arguments)); });
  }), 'event ' + ev);
}
function emitAck(s) {
  var a = argsOf(arguments).slice(1);
  return within(new Promise(function (resolve) {
    s.emit.apply(s, a.concat([function () { resolve(argsOf(arguments)); }]));
  }), 'ack of ' + a[0]);
}
// never records whether s gets ev (for "must not receive" checks).
function never(s, ev) {
  var got = [];
  function h() { got.push(argsOf(arguments)); }
  s.on(ev, h);
  return { got: got, stop: function () { s.removeListener(ev, h); } };
}
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
function show(v) { return JSON.stringify(v); }
function sessionId(s) { return s.socket.sessionid; }
function expect(cond, why) { if (!cond) throw new Error(why); }
function oneLine(s) { return String(s).replace(/\s*\n\s*/g, ' | '); }

async function check(name, fn, knownReferenceBug) {
  try {
    await fn();
    ok(name);
  } catch (e) {
    if (reference && knownReferenceBug) ok(name, 'known reference bug: ' + knownReferenceBug + ' (' + oneLine(e.message) + ')');
    else notOk(name, oneLine(e.message));
  }
}

// Strings that break careless servers: astral emoji (2 UTF-16 units, 4 UTF-8
// bytes), U+2028 and U+2029 (JavaScript line terminators, raw in
// JSON.stringify output), </script> (jsonp and htmlfile), quotes,
// backslashes, control characters.
var UNICODE = '😀 é ü 中文 \u2028 \u2029 </script> <!-- "q" \'s\' \\ \n\t\u0000 \ufffd';
var LINE_SEPARATORS = 'a\u2028b\u2029c';

async function phase(ns) {
  var p = '[' + (ns || 'default') + ' ' + transport + '] ';
  var cs = [];
  await check(p + 'connect and welcome', async function () {
    for (var i = 0; i < 3; i++) cs.push(await connect(urls[i % urls.length], ns));
    cs.forEach(function (c) {
      expect(c.welcome && c.welcome.sid === sessionId(c.s) && c.welcome.ns === ns,
        'welcome ' + show(c.welcome) + ' for session ' + sessionId(c.s));
      var t = c.s.socket.transport && c.s.socket.transport.name;
      expect(t === transport, 'connected over ' + t);
    });
  });
  if (cs.length < 3) return cs;
  var a = cs[0].s, b = cs[1].s, c = cs[2].s;

  await check(p + 'echo with ack', async function () {
    var got = await emitAck(a, 'echo', 'x', 42, { o: [1, null, true] }, [], 1.5);
    expect(same(got, ['x', 42, { o: [1, null, true] }, [], 1.5]), show(got));
  });
  await check(p + 'echo with ack, emoji and </script>', async function () {
    var s = UNICODE.replace(/[\u2028\u2029]/g, '');
    var got = await emitAck(a, 'echo', s, { k: s });
    expect(same(got, [s, { k: s }]), show(got));
  });
  // The 0.9 parsers (server and client) read ack data with /^([0-9]+)(\+)?(.*)/,
  // whose '.' stops at U+2028/U+2029, and JSON.stringify leaves them raw: the
  // reference loses such arguments on both ack paths.
  await check(p + 'U+2028 and U+2029 on the ack paths (echo ack, answer to question)', async function () {
    var got = await emitAck(a, 'echo', LINE_SEPARATORS);
    expect(same(got, [LINE_SEPARATORS]), 'server → client ack: ' + show(got));
    var q = once(a, 'question');
    var w = once(a, 'answer');
    a.emit('ask', 'sep?');
    var qa = await q;
    expect(qa[0] === 'sep?' && typeof qa[1] === 'function', 'question ' + show(qa));
    qa[1](LINE_SEPARATORS);
    var ans = await w;
    expect(same(ans, [LINE_SEPARATORS]), 'client → server ack: answer ' + show(ans));
  }, 'ack data with raw U+2028/U+2029 is cut short by the 0.9 ack regexp');
  await check(p + 'echo without ack, with unicode, U+2028, U+2029 and </script>', async function () {
    var w = once(a, 'echo');
    a.emit('echo', 'plain', 1, UNICODE);
    var got = await w;
    expect(same(got, ['plain', 1, UNICODE]), show(got));
  });
  await check(p + 'message', async function () {
    var w = once(a, 'message');
    a.send('hello ' + UNICODE);
    var got = await w;
    expect(same(got, ['hello ' + UNICODE]), show(got));
  });
  await check(p + 'json message', async function () {
    var w = once(a, 'message');
    var v = { k: [1, 2], u: UNICODE, n: null };
    a.json.send(v);
    var got = await w;
    expect(same(got, [v]), show(got));
  });
  await check(p + 'join and to (relay reaches the room but the sender)', async function () {
    expect(same(await emitAck(a, 'join', 'room1'), [true]), 'join a');
    expect(same(await emitAck(b, 'join', 'room1'), [true]), 'join b');
    var na = never(a, 'relay'), nc = never(c, 'relay');
    try {
      var w = once(b, 'relay');
      expect(same(await emitAck(a, 'to', 'room1', { n: 1, u: '😀' }), [true]), 'to ack');
      var got = await w;
      expect(same(got, [{ n: 1, u: '😀' }]), 'b got ' + show(got) + ' (the payload, never the sender\'s sid)');
      await sleep(300);
      expect(!na.got.length, 'the sender got its own relay');
      expect(!nc.got.length, 'a socket outside the room got the relay');
    } finally { na.stop(); nc.stop(); }
  });
  await check(p + 'leave', async function () {
    expect(same(await emitAck(b, 'leave', 'room1'), [true]), 'leave');
    var nb = never(b, 'relay');
    try {
      var w = once(a, 'relay');
      expect(same(await emitAck(c, 'to', 'room1', 'only-a'), [true]), 'to ack');
      var got = await w;
      expect(same(got, ['only-a']), 'a got ' + show(got));
      await sleep(300);
      expect(!nb.got.length, 'a socket that left still got a relay');
    } finally { nb.stop(); }
  });
  await check(p + 'shout (everyone but the sender)', async function () {
    var nc = never(c, 'shout');
    try {
      var wa = once(a, 'shout'), wb = once(b, 'shout');
      expect(same(await emitAck(c, 'shout', 'hey'), [true]), 'shout ack');
      var ga = await wa, gb = await wb;
      expect(same(ga, ['hey']) && same(gb, ['hey']), 'shout payloads ' + show(ga) + ' ' + show(gb));
      await sleep(300);
      expect(!nc.got.length, 'the sender got its own shout');
    } finally { nc.stop(); }
  });
  await check(p + 'whoami', async function () {
    var got = await emitAck(b, 'whoami');
    expect(same(got, [sessionId(b)]), show(got) + ' for session ' + sessionId(b));
  });
  await check(p + 'count', async function () {
    var got = await emitAck(b, 'count');
    expect(same(got, [3]), show(got));
  });
  await check(p + 'ask and answer (server emit with ack)', async function () {
    var q = once(c, 'question');
    var w = once(c, 'answer');
    c.emit('ask', 'q? 😀');
    var qa = await q;
    expect(qa[0] === 'q? 😀' && typeof qa[1] === 'function', 'question ' + show(qa) + ' (no ack function?)');
    qa[1]('a! 😀', 2);
    var got = await w;
    expect(same(got, ['a! 😀']), show(got));
  });
  await check(p + 'bye (server disconnect; the others stay)', async function () {
    var w = once(a, 'disconnect');
    a.emit('bye');
    var got = await w;
    // In the default namespace the whole session ends as 'booted' (no
    // reconnect); a namespace's disconnect carries no reason in the 0.9 client.
    if (ns === '') expect(got[0] === 'booted', 'disconnect reason ' + show(got[0]));
    var n;
    for (var i = 0; i < 20; i++) {
      n = await emitAck(b, 'count');
      if (same(n, [2])) break;
      await sleep(100);
    }
    expect(same(n, [2]), 'count after bye ' + show(n));
  });
  return cs;
}

function close(cs) {
  cs.forEach(function (x) {
    try { x.s.socket.disconnect(); } catch (e) { /* already gone */ }
  });
}

function finish() {
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
}

(async function () {
  setTimeout(function () { notOk('suite', 'global timeout after ' + globalTimeout + ' ms'); finish(); }, globalTimeout);
  try {
    close(await phase(''));
    await sleep(300);
    close(await phase('/chat'));
    await sleep(300); // let the disconnects go out before exiting
  } catch (e) {
    notOk('suite', 'unexpected ' + oneLine(e && e.stack || e));
  }
  finish();
})();
