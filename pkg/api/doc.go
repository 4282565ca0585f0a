// Package api is the server HTTP API: what a backend that is not written in
// Go (a Django app, a cron job, a shell script with curl) needs to act on
// the cluster's sockets. A gateway serves it on its -api-addr; every action
// goes through worker.Emitter, so it has the same effects, with the same
// Redis keys and scripts, as a Go worker's.
//
// Every path is under /v1; requests and answers are JSON; docs/api.yaml
// (OpenAPI 3) is the reference, and a test checks the running gateway's
// answers against it.
//
//	POST /v1/emit        {"namespace","socket"|"room","except","event","args"}  emit an event
//	POST /v1/send        {"namespace","socket"|"room","except","message"}       send a message (3:::)
//	POST /v1/json        {"namespace","socket"|"room","except","data"}          send a JSON message (4:::)
//	POST /v1/join        {"namespace","socket","room"}                           put a socket in a room
//	POST /v1/leave       {"namespace","socket","room"}                           take it out
//	POST /v1/disconnect  {"namespace","socket"}                                  disconnect a socket
//	GET  /v1/sockets?namespace=&room=&cursor=&limit=                             list socket ids, a page at a time
//	GET  /v1/rooms?namespace=&socket=                                            the rooms of a socket
//	GET  /v1/rooms?namespace=&cursor=&limit=                                     the rooms of a namespace, a page at a time
//	GET  /v1/count?namespace=&room=                                              count sockets
//
// An action answers 200 {"ok":true}. The namespace is "" (the default, when
// left out) or "/name". An action aimed at one socket ("socket") answers
// 404 unknown_socket when that socket is not connected to the namespace;
// without "socket" and "room" it goes to the whole namespace, and "except"
// leaves one socket out of a room or namespace.
//
// Authentication: Config.Key, sent as "Authorization: Bearer KEY",
// compared in constant time (of SHA-256 digests, so neither content nor
// length leaks). Without a key the API is open, which CheckListen allows
// only on a loopback address.
//
// Errors answer {"error": REASON, "message": TEXT, "field": NAME (for
// bad_field)} with the status of the reason: 400 bad_json and bad_field,
// 401 unauthorized, 404 not_found and unknown_socket, 405
// method_not_allowed, 408 body_timeout, 413 body_too_large, 503
// redis_unavailable. Each is counted in realtime_api_errors_total{reason}
// and logged at most once per 10 s per reason.
package api
