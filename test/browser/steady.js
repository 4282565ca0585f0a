// The clients of node/steady.js (node/steady-lib.js) in headless Chromium,
// for the transports the official client has only in a browser
// (jsonp-polling):
//
//   node browser/steady.js --url LB --transport jsonp-polling --clients 30 --seconds 12 --expect same-session [--plain] [--same-origin]
//
// --same-origin: every client talks to the page's own origin, as a page
// served through the balancer does (the 0.9 client then sends cookies with
// every request: gateway -session-binding); 2 clients to a page, each page
// in a browser context of its own (Chromium opens 6 connections per host
// and context).
//
// The clients run 6 to a page (see below), each talking to its own host
// name (c<i>.steady.test, which Chromium resolves to the address of
// --url): a browser opens at most 6 connections per host, fewer than a
// client's parked poll and POST need once several share one. The hosts
// are all of the page's site (steady.test), so the iframes jsonp-polling
// POSTs through stay in the page's process. Each POST navigates an iframe,
// which costs the browser tens of milliseconds of CPU: on a 2-core machine
// shared with the cluster, 30 clients make a round trip every second or
// two each, not every 20 ms. The page is browser/steady.html,
// which the gateways serve (-static test/browser) with the official client
// (-client-script).
// Prints what node/steady.js prints; exits 0 only when nothing failed.
'use strict';

var path = require('path');
var playwright = require('playwright-core');
var steady = require('../node/steady-lib');

var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }
var base = new URL(opt('url'));
var opts = {
  transport: opt('transport', 'jsonp-polling'), clients: +opt('clients', 30), seconds: +opt('seconds', 10),
  expect: opt('expect', 'same-session'), plain: args.indexOf('--plain') >= 0, urls: [],
};
var sameOrigin = args.indexOf('--same-origin') >= 0;
var perPage = sameOrigin ? 2 : 6;
for (var i = 0; i < opts.clients; i++) opts.urls.push(sameOrigin ? 'http://steady.test:' + base.port : 'http://c' + i + '.steady.test:' + base.port);
var page = 'http://steady.test:' + base.port + '/steady.html';

// runPage runs the clients in a page (of a browser context of its own) and
// returns their states.
async function runPage(browser, opts) {
  var p = await browser.newPage();
  p.on('pageerror', function (e) { console.log('# page error: ' + e.message); });
  await p.goto(page);
  await p.addScriptTag({ path: path.join(__dirname, '../node/steady-lib.js') });
  return p.evaluate(function (opts) {
    io.transports = [opts.transport];
    return new Promise(function (resolve) { window.steady.run(io, opts, resolve); });
  }, opts);
}

(async function () {
  var browser = await playwright.chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--host-resolver-rules=MAP *.test ' + base.hostname,
      '--disable-site-isolation-trials', '--disable-features=IsolateOrigins,site-per-process'],
  });
  var failed = 1;
  var timer = setTimeout(function () { console.log('not ok - steady: global timeout'); process.exit(1); }, (opts.seconds + 60) * 1000);
  try {
    // A page runs at most 6 clients: Chromium's resource scheduler lets a
    // page have only 10 low-priority requests (async scripts, as
    // jsonp-polling's polls are) in flight, and a client always has a
    // poll parked. More would queue behind the parked polls for up to the
    // polling duration.
    var pages = Math.ceil(opts.clients / perPage), runs = [];
    for (var k = 0; k < pages; k++) {
      var mine = { transport: opts.transport, seconds: opts.seconds, expect: opts.expect, plain: opts.plain, urls: opts.urls.slice(k * perPage, (k + 1) * perPage) };
      mine.clients = mine.urls.length;
      runs.push(runPage(browser, mine));
    }
    var sts = [];
    (await Promise.all(runs)).forEach(function (part, k) {
      part.forEach(function (st, j) { st.i = k * perPage + j; sts.push(st); });
    });
    failed = steady.report(sts, opts, console.log).failed;
  } catch (e) {
    console.log('not ok - steady: ' + e.message.split('\n')[0]);
  }
  clearTimeout(timer);
  await browser.close();
  process.exit(failed ? 1 : 0);
})();
