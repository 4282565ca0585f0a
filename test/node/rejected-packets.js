// The official socket.io-client 0.9.16 against a gateway, over websocket:
// a packet the gateway rejects is answered (issue 16 item 9). The client's
// own API cannot send a bad packet, so each is written raw on its
// transport, with its ack callback registered as the client's emit would
// (namespace.acks, numbered by ackPackets).
//
//   node node/rejected-packets.js --url http://127.0.0.1:PORT
//
// Prints "ok - <name>" or "not ok - <name>: <why>" per check and a last
// line "N passed, M failed"; exits 0 only when nothing failed.
'use strict';

var io = require('socket.io-client');
var promises = require('./promise-lib');

var args = process.argv.slice(2);
var i = args.indexOf('--url');
var url = i >= 0 ? args[i + 1] : '';
if (!/^https?:\/\/[^/]+$/.test(url || '')) { console.error('usage: node node/rejected-packets.js --url URL'); process.exit(2); }
io.transports = ['websocket'];

var passed = 0, failed = 0;
function ok(name) { passed++; console.log('ok - ' + name); }
function notOk(name, why) { failed++; console.log('not ok - ' + name + ': ' + why); }
function within(p, what) { return promises.within(p, what, 5000); }
async function check(name, fn) {
  try { await fn(); ok(name); } catch (e) { notOk(name, e.message); }
}

// raw sends a raw packet asking for a data ack with the namespace's next
// ack id; it resolves with the ack's arguments and the error events seen.
function raw(s, make) {
  var errors = [];
  function onError(r) { errors.push(r); }
  s.on('error', onError);
  return within(new Promise(function (resolve) {
    var id = ++s.ackPackets;
    s.acks[id] = function () { resolve({ args: Array.prototype.slice.call(arguments), errors: errors }); };
    s.socket.transport.send(make(id));
  }), 'ack').finally(function () { s.removeListener('error', onError); });
}

(async function () {
  var s = io.connect(url, { 'force new connection': true, reconnect: false });
  await within(new Promise(function (resolve) { s.once('welcome', resolve); }), 'welcome');

  await check('an event with bad JSON and a data ack: the callback gets the reason, the socket an error', async function () {
    var got = await raw(s, function (id) { return '5:' + id + '+::{bad'; });
    if (JSON.stringify(got.args) !== '[{"error":"bad_event"}]') throw new Error('ack args ' + JSON.stringify(got.args));
    if (JSON.stringify(got.errors) !== '[""]') throw new Error('error events ' + JSON.stringify(got.errors));
  });
  await check('an event with bad JSON and a plain ack: answered at once, as the reference does', async function () {
    var got = await raw(s, function (id) { return '5:' + id + '::{bad'; });
    if (JSON.stringify(got.args) !== '[]') throw new Error('ack args ' + JSON.stringify(got.args));
  });
  await check('the session goes on: an echo after the rejections', async function () {
    var args = await within(new Promise(function (resolve) {
      s.once('echo', function () { resolve(Array.prototype.slice.call(arguments)); });
      s.emit('echo', 'still here');
    }), 'echo');
    if (JSON.stringify(args).indexOf('still here') < 0) throw new Error('echo ' + JSON.stringify(args));
    if (!s.socket.connected) throw new Error('disconnected');
  });
  s.disconnect();
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
})();
