// The official socket.io-client 0.9.16 against a gateway, driven by the
// server HTTP API (docs/api.yaml): what the API emits, sends and sends as
// JSON reaches the sockets it names (one socket, a room, a namespace with an
// exception) and no other; list (sockets and rooms) and count agree with the
// connected clients;
// a disconnect through the API ends the client's session as a server
// disconnect does (the client emits disconnect and does not reconnect); the
// API refuses a request without its key or with a wrong one.
//
//   node node/server-api.js --url http://127.0.0.1:PORT --api http://127.0.0.1:APIPORT --key KEY
//       [--transport websocket|xhr-polling]
//
// Prints "ok - <name>" or "not ok - <name>: <why>" per check and a last
// line "N passed, M failed"; exits 0 only when nothing failed.
'use strict';

var io = require('socket.io-client');
var http = require('http');
var promises = require('./promise-lib');

function arg(name, def) {
  var args = process.argv.slice(2);
  var i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
}
var url = arg('url', ''), api = arg('api', ''), key = arg('key', ''), transport = arg('transport', 'websocket');
if (!/^https?:\/\/[^/]+$/.test(url) || !/^https?:\/\/[^/]+$/.test(api) || !key) {
  console.error('usage: node node/server-api.js --url URL --api URL --key KEY [--transport T]');
  process.exit(2);
}
io.transports = [transport];

var passed = 0, failed = 0;
function ok(name) { passed++; console.log('ok - ' + name); }
function notOk(name, why) { failed++; console.log('not ok - ' + name + ': ' + why); }
async function check(name, fn) {
  try { await fn(); ok(name); } catch (e) { notOk(name, e.message); }
}
function within(p, what, ms) { return promises.within(p, what, ms || 5000); }
var sleep = promises.sleep;

// call performs an API request and resolves with {status, body}.
function call(method, path, body, withKey) {
  return new Promise(function (resolve, reject) {
    var data = body === undefined ? '' : JSON.stringify(body);
    var headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    if (withKey !== undefined) { if (withKey) headers.Authorization = 'Bearer ' + withKey; } else headers.Authorization = 'Bearer ' + key;
    var req = http.request(api + path, { method: method, headers: headers }, function (res) {
      var chunks = [];
      res.on('data', function (c) { chunks.push(c); });
      res.on('end', function () {
        var text = Buffer.concat(chunks).toString('utf8');
        try { resolve({ status: res.statusCode, body: JSON.parse(text) }); } catch (e) { reject(new Error('answer not JSON: ' + text)); }
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}
async function action(path, body) {
  var r = await call('POST', path, body);
  if (r.status !== 200 || !r.body.ok) throw new Error('POST ' + path + ' ' + JSON.stringify(body) + ': ' + r.status + ' ' + JSON.stringify(r.body));
}

// client connects a socket (to namespace ns, '' for the default) and
// records every event, message and disconnect it gets.
async function client(ns) {
  var s = io.connect(url + ns, { 'force new connection': true });
  var c = { s: s, got: [], disconnects: 0, reconnecting: 0 };
  var welcome = new Promise(function (resolve) { s.once('welcome', resolve); });
  s.on('api', function () { c.got.push('api ' + JSON.stringify(Array.prototype.slice.call(arguments))); });
  s.on('message', function (m) { c.got.push('message ' + JSON.stringify(m)); });
  s.on('disconnect', function (why) { c.disconnects++; c.got.push('disconnect'); });
  s.socket.on('reconnecting', function () { c.reconnecting++; });
  var w = await within(welcome, 'welcome');
  c.sid = w.sid;
  if (c.sid !== s.socket.sessionid) throw new Error('welcome sid ' + c.sid + ' is not the session id ' + s.socket.sessionid);
  return c;
}

// expect waits until each client got exactly what it wants (and then a
// little longer, to see nothing more arrives), then clears what they got.
async function expect(want) {
  var deadline = Date.now() + 5000;
  for (;;) {
    var done = want.every(function (w) { return w[0].got.length >= w[1].length; });
    if (done || Date.now() > deadline) break;
    await sleep(20);
  }
  await sleep(200);
  want.forEach(function (w) {
    var got = JSON.stringify(w[0].got), exp = JSON.stringify(w[1]);
    w[0].got = [];
    if (got !== exp) throw new Error(w[0].sid + ' got ' + got + ', want ' + exp);
  });
}

async function listAll(query) {
  var ids = [], cursor = '', pages = 0;
  for (;;) {
    var r = await call('GET', '/v1/sockets?limit=1&cursor=' + cursor + query);
    if (r.status !== 200) throw new Error('sockets: ' + r.status + ' ' + JSON.stringify(r.body));
    ids = ids.concat(r.body.sockets);
    cursor = r.body.cursor;
    if (++pages > 1000) throw new Error('no last page');
    if (!cursor) break;
  }
  return Array.from(new Set(ids)).sort();
}

async function count(query) {
  var r = await call('GET', '/v1/count' + query);
  if (r.status !== 200) throw new Error('count: ' + r.status + ' ' + JSON.stringify(r.body));
  return r.body.count;
}

(async function () {
  var a = await client(''), b = await client(''), c = await client('');
  var all = [a.sid, b.sid, c.sid].sort();

  await check('without the key, and with a wrong one: 401 unauthorized, nothing sent', async function () {
    for (var k of ['', 'wrong-' + key]) {
      var r = await call('POST', '/v1/emit', { event: 'api', args: ['nope'] }, k);
      if (r.status !== 401 || r.body.error !== 'unauthorized') throw new Error((k ? 'wrong key: ' : 'no key: ') + r.status + ' ' + JSON.stringify(r.body));
    }
    await expect([[a, []], [b, []], [c, []]]);
  });
  await check('an emit to one socket reaches it alone, with its arguments', async function () {
    await action('/v1/emit', { socket: a.sid, event: 'api', args: [1, { two: [3] }, 'ü\u2028'] });
    await expect([[a, ['api [1,{"two":[3]},"ü\u2028"]']], [b, []], [c, []]]);
  });
  await check('join through the API, then an emit to the room reaches its members alone', async function () {
    await action('/v1/join', { socket: a.sid, room: 'r' });
    await action('/v1/join', { socket: b.sid, room: 'r' });
    await action('/v1/emit', { room: 'r', event: 'api', args: ['room'] });
    await expect([[a, ['api ["room"]']], [b, ['api ["room"]']], [c, []]]);
  });
  await check('an emit to the namespace with an exception reaches all but that socket', async function () {
    await action('/v1/emit', { event: 'api', except: b.sid });
    await expect([[a, ['api []']], [b, []], [c, ['api []']]]);
  });
  await check('an emit to a room with an exception', async function () {
    await action('/v1/emit', { room: 'r', except: a.sid, event: 'api', args: ['r but a'] });
    await expect([[a, []], [b, ['api ["r but a"]']], [c, []]]);
  });
  await check('send and json: a message to one socket, a JSON message to the room', async function () {
    await action('/v1/send', { socket: c.sid, message: 'just c' });
    await action('/v1/json', { room: 'r', data: { n: [1, null] } });
    await expect([[a, ['message {"n":[1,null]}']], [b, ['message {"n":[1,null]}']], [c, ['message "just c"']]]);
  });
  await check('list (a page at a time) and count agree with the connected clients', async function () {
    var listed = await listAll('');
    if (JSON.stringify(listed) !== JSON.stringify(all)) throw new Error('listed ' + listed + ', connected ' + all);
    var inRoom = await listAll('&room=r');
    if (JSON.stringify(inRoom) !== JSON.stringify([a.sid, b.sid].sort())) throw new Error('listed in r: ' + inRoom);
    if (await count('') !== 3) throw new Error('count ' + await count(''));
    if (await count('?room=r') !== 2) throw new Error('count of r ' + await count('?room=r'));
    var r = await call('GET', '/v1/rooms?socket=' + a.sid);
    if (r.status !== 200 || JSON.stringify(r.body.rooms) !== '["r"]') throw new Error('rooms of a: ' + r.status + ' ' + JSON.stringify(r.body));
    var rooms = [], cursor = '';
    do {
      r = await call('GET', '/v1/rooms?limit=5&cursor=' + cursor);
      if (r.status !== 200) throw new Error('rooms: ' + r.status + ' ' + JSON.stringify(r.body));
      rooms = rooms.concat(r.body.rooms);
      cursor = r.body.cursor;
    } while (cursor);
    if (JSON.stringify(Array.from(new Set(rooms))) !== '["r"]') throw new Error('rooms of the namespace: ' + JSON.stringify(rooms));
  });
  await check('leave through the API: the room no longer reaches that socket', async function () {
    await action('/v1/leave', { socket: b.sid, room: 'r' });
    await action('/v1/emit', { room: 'r', event: 'api', args: ['after leave'] });
    await expect([[a, ['api ["after leave"]']], [b, []], [c, []]]);
    if (await count('?room=r') !== 1) throw new Error('count of r after leave ' + await count('?room=r'));
  });
  await check('a disconnect through the API ends the session: disconnect, no reconnect, gone from list and count', async function () {
    await action('/v1/disconnect', { socket: a.sid });
    await expect([[a, ['disconnect']], [b, []], [c, []]]);
    await sleep(1500);
    if (a.reconnecting !== 0 || a.s.socket.connected || a.s.socket.reconnecting) throw new Error('the client reconnects after a server disconnect');
    var listed = await listAll('');
    if (JSON.stringify(listed) !== JSON.stringify([b.sid, c.sid].sort())) throw new Error('listed after disconnect: ' + listed);
    if (await count('') !== 2) throw new Error('count after disconnect ' + await count(''));
    var r = await call('POST', '/v1/emit', { socket: a.sid, event: 'api' });
    if (r.status !== 404 || r.body.error !== 'unknown_socket') throw new Error('emit to the ended socket: ' + r.status + ' ' + JSON.stringify(r.body));
  });
  await check('in namespace /chat: an emit to the namespace reaches its sockets alone; a disconnect there leaves the session', async function () {
    var d = await client('/chat');
    await action('/v1/emit', { namespace: '/chat', event: 'api', args: ['chat'] });
    await expect([[d, ['api ["chat"]']], [b, []], [c, []]]);
    if (await count('?namespace=/chat') !== 1) throw new Error('count of /chat ' + await count('?namespace=/chat'));
    await action('/v1/disconnect', { namespace: '/chat', socket: d.sid });
    await expect([[d, ['disconnect']]]);
    if (!d.s.socket.connected) throw new Error('the session ended with its /chat socket');
    if (await count('?namespace=/chat') !== 0) throw new Error('count of /chat after its disconnect ' + await count('?namespace=/chat'));
    d.s.socket.disconnect();
  });
  b.s.disconnect();
  c.s.disconnect();
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
})();
