// The reference Socket.IO 0.9.19 server running the echo contract (see the
// README's echo app), for differential tests and benchmarks.
//
// Environment: PORT (0 = any free port), HOST (default 127.0.0.1),
// TRANSPORTS (comma list), HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT,
// CLOSE_TIMEOUT, POLLING_DURATION (seconds), DEBUG=1 for its logs.
// Prints "listening <port>" once ready.
'use strict';

var http = require('http');
var sio = require('socket.io');

var server = http.createServer(function (req, res) {
  res.writeHead(404);
  res.end();
});
var io = sio.listen(server, { log: !!process.env.DEBUG });
io.set('log level', process.env.DEBUG ? 3 : 0);
if (process.env.TRANSPORTS) io.set('transports', process.env.TRANSPORTS.split(','));
if (process.env.HEARTBEAT_INTERVAL) io.set('heartbeat interval', +process.env.HEARTBEAT_INTERVAL);
if (process.env.HEARTBEAT_TIMEOUT) io.set('heartbeat timeout', +process.env.HEARTBEAT_TIMEOUT);
if (process.env.CLOSE_TIMEOUT) io.set('close timeout', +process.env.CLOSE_TIMEOUT);
if (process.env.POLLING_DURATION) io.set('polling duration', +process.env.POLLING_DURATION);

function contract(nsName) {
  var ns = nsName === '' ? io.sockets : io.of(nsName);
  ns.on('connection', function (socket) {
    socket.emit('welcome', { sid: socket.id, ns: nsName });
    // json messages arrive as 'message' too, already parsed.
    socket.on('message', function (msg) {
      if (typeof msg === 'string') socket.send(msg); else socket.json.send(msg);
    });
    socket.on('echo', function () {
      var args = Array.prototype.slice.call(arguments);
      var fn = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      if (fn) fn.apply(null, args);
      else socket.emit.apply(socket, ['echo'].concat(args));
    });
    socket.on('join', function (room, fn) { socket.join(room); if (fn) fn(true); });
    socket.on('leave', function (room, fn) { socket.leave(room); if (fn) fn(true); });
    socket.on('to', function (room, payload, fn) {
      socket.broadcast.to(room).emit('relay', payload, socket.id);
      if (fn) fn(true);
    });
    socket.on('shout', function (payload, fn) {
      socket.broadcast.emit('shout', payload);
      if (fn) fn(true);
    });
    socket.on('whoami', function (fn) { if (fn) fn(socket.id); });
    socket.on('ask', function (q) {
      socket.emit('question', q, function (a) { socket.emit('answer', a); });
    });
    socket.on('count', function (fn) { if (fn) fn(ns.clients().length); });
    socket.on('bye', function () { socket.disconnect(); });
  });
}
contract('');
contract('/chat');

server.listen(+(process.env.PORT || 0), process.env.HOST || '127.0.0.1', function () {
  console.log('listening ' + server.address().port);
});
process.on('SIGTERM', function () { process.exit(0); });
