// The reference Socket.IO 0.9.19 server (npm socket.io@0.9.19) running the
// echo contract, in the default namespace "" and in "/chat", for
// differential tests and as the baseline of node/echo-contract.js.
//
//   PORT=0 node reference/echo-server.js      → prints "listening <port>"
//
// Environment: PORT (0 or absent = any free port), HOST (default 127.0.0.1),
// TRANSPORTS (comma list, default websocket,htmlfile,xhr-polling,jsonp-polling),
// HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, CLOSE_TIMEOUT, POLLING_DURATION
// (seconds; the reference defaults 25, 60, 60, 20 when absent), DEBUG=1 for
// the reference's debug log (otherwise "log level" 1: errors and warnings).
// Stdout carries exactly one line, "listening <port>"; the reference's log
// goes to stderr. SIGTERM or SIGINT exits 0.
//
// Echo contract (both namespaces):
//   connect            → emit welcome {sid, ns}
//   echo ...args [ack] → ack(...args) when the client asked for an ack, else emit echo ...args
//   message / json     → sent back as a message / as json
//   join room, leave room → ack true
//   to room payload    → emit relay [payload] to the room but the sender; ack true
//   shout payload      → socket.broadcast.emit shout [payload]; ack true
//   whoami             → ack the session id
//   ask q              → emit question [q] with an ack; the client's answer a → emit answer [a]
//   count              → ack the number of sockets in this namespace
//   bye                → socket.disconnect()
'use strict';

var http = require('http');
var sio = require('socket.io');
var Logger = require('socket.io/lib/logger');

function seconds(name) {
  var v = process.env[name];
  if (v === undefined || v === '') return undefined;
  var n = Number(v);
  if (!isFinite(n) || n < 0) {
    console.error('echo-server: ' + name + ' must be a number of seconds, not ' + JSON.stringify(v));
    process.exit(2);
  }
  return n;
}

var debug = !!process.env.DEBUG && process.env.DEBUG !== '0';

// The reference logger writes with console.log; keep stdout for the one
// "listening" line and send the log to stderr.
var levels = ['error', 'warn', 'info', 'debug'];
var logger = new Logger();
logger.log = function (type) {
  if (levels.indexOf(type) > this.level || !this.enabled) return this;
  console.error.apply(console, [type + ' -'].concat(Array.prototype.slice.call(arguments, 1)));
  return this;
};

var server = http.createServer(function (req, res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});
var io = sio.listen(server, { logger: logger, 'log level': debug ? 3 : 1, 'log colors': false });

if (process.env.TRANSPORTS) {
  io.set('transports', process.env.TRANSPORTS.split(',').map(function (s) { return s.trim(); }).filter(Boolean));
}
[['HEARTBEAT_INTERVAL', 'heartbeat interval'], ['HEARTBEAT_TIMEOUT', 'heartbeat timeout'],
  ['CLOSE_TIMEOUT', 'close timeout'], ['POLLING_DURATION', 'polling duration']].forEach(function (kv) {
  var v = seconds(kv[0]);
  if (v !== undefined) io.set(kv[1], v);
});

function contract(nsName) {
  var ns = nsName === '' ? io.sockets : io.of(nsName);
  ns.on('connection', function (socket) {
    socket.emit('welcome', { sid: socket.id, ns: nsName });
    // The reference delivers json packets as 'message' too, already parsed,
    // so the packet type is guessed from the value: a json message carrying
    // a bare string comes back as a plain message.
    socket.on('message', function (msg) {
      if (typeof msg === 'string') socket.send(msg); else socket.json.send(msg);
    });
    socket.on('echo', function () {
      var args = Array.prototype.slice.call(arguments);
      var fn = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      if (fn) fn.apply(null, args);
      else socket.emit.apply(socket, ['echo'].concat(args));
    });
    // The reference keys rooms as namespace + '/' + room.
    socket.on('join', function (room, fn) { socket.join(room); if (fn) fn(true); });
    socket.on('leave', function (room, fn) { socket.leave(room); if (fn) fn(true); });
    socket.on('to', function (room, payload, fn) {
      socket.broadcast.to(room).emit('relay', payload); // never the sender's sid: it is its bearer token
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

// The reference never listens for errors on its sockets: a client that
// resets a websocket (ECONNRESET) would crash the process on Node 20.
server.on('connection', function (sock) {
  sock.on('error', function (err) { logger.warn('socket error: ' + err.message); });
});
server.on('error', function (err) {
  console.error('echo-server: ' + err.message);
  process.exit(1);
});
var port = process.env.PORT ? Number(process.env.PORT) : 0;
server.listen(port, process.env.HOST || '127.0.0.1', function () {
  process.stdout.write('listening ' + server.address().port + '\n');
});

// Open websockets and long polls would keep server.close() waiting: exit.
function stop() { process.exit(0); }
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
