// Two headless Chromium pages chat with each other through two gateways,
// each page on its own transport (the page's ?transport= parameter).
//
//   node browser/chat.js --a URL --b URL --transport-a websocket --transport-b jsonp-polling --shot artifacts/chat.png
//
// Prints ok/not ok lines and "N passed, M failed"; exits 0 when all passed.
'use strict';

var playwright = require('playwright-core');

var args = process.argv.slice(2);
function opt(n, d) { var i = args.indexOf('--' + n); return i >= 0 ? args[i + 1] : d; }

var passed = 0, failed = 0;
function result(ok, name, why) {
  if (ok) { passed++; console.log('ok - ' + name); } else { failed++; console.log('not ok - ' + name + ': ' + why); }
}

(async function () {
  var browser = await playwright.chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  var timer = setTimeout(function () { result(false, 'suite', 'global timeout'); finish(browser); }, 90000);
  try {
    var ta = opt('transport-a', 'websocket'), tb = opt('transport-b', 'xhr-polling');
    var a = await browser.newPage(), b = await browser.newPage();
    var logs = [];
    [a, b].forEach(function (p, i) { p.on('console', function (m) { logs.push((i ? 'b' : 'a') + ': ' + m.text()); }); });
    // The 0.9 client keeps a page "loading" while it polls, so wait for the
    // DOM, not for the load event.
    await a.goto(opt('a') + '/?transport=' + ta, { waitUntil: 'domcontentloaded' });
    await b.goto(opt('b') + '/?transport=' + tb, { waitUntil: 'domcontentloaded' });
    for (var [p, t] of [[a, ta], [b, tb]]) {
      await p.waitForFunction(function (t) {
        return document.getElementById('status').textContent === 'connected via ' + t;
      }, t, { timeout: 15000 });
      result(true, 'page connected via ' + t);
    }
    async function enter(p, nick) {
      await p.fill('#nick', nick);
      await p.click('#nick-go');
      await p.waitForFunction(function () { return !document.getElementById('text').disabled; }, null, { timeout: 15000 });
    }
    await enter(a, 'ann-' + ta);
    await enter(b, 'bob-' + tb);
    await a.waitForFunction(function (n) {
      return Array.from(document.querySelectorAll('#users li')).some(function (li) { return li.textContent === n; });
    }, 'bob-' + tb, { timeout: 15000 });
    result(true, 'live user list shows the other page');
    async function say(from, to, text) {
      await from.fill('#text', text);
      await from.click('#send');
      await to.waitForFunction(function (text) {
        return Array.from(document.querySelectorAll('#messages li')).some(function (li) { return li.textContent.endsWith(text); });
      }, text, { timeout: 15000 });
    }
    await say(a, b, 'hello from ' + ta + ' </script> 😀');
    result(true, ta + ' -> ' + tb);
    await say(b, a, 'hi back from ' + tb);
    result(true, tb + ' -> ' + ta);
    var shot = opt('shot');
    if (shot) {
      // Straight from the DevTools protocol: page.screenshot waits for fonts,
      // which a page polling over jsonp (a script always loading) never has.
      var cdp = await a.context().newCDPSession(a);
      var img = await cdp.send('Page.captureScreenshot', { format: 'png' });
      require('fs').writeFileSync(shot, Buffer.from(img.data, 'base64'));
      console.log('# screenshot ' + shot);
    }
    // Close the other page as a user does: a websocket closes at once; a
    // polling session ends after the close timeout (Chromium forbids the 0.9
    // client's synchronous ?disconnect on unload). Either way it leaves.
    await b.close();
    await a.waitForFunction(function (n) {
      return !Array.from(document.querySelectorAll('#users li')).some(function (li) { return li.textContent === n; });
    }, 'bob-' + tb, { timeout: 20000 });
    result(true, 'a closed page leaves the user list');
    await a.close();
  } catch (e) {
    result(false, 'chat', e.message.split('\n')[0]);
  }
  clearTimeout(timer);
  finish(browser);
})();

async function finish(browser) {
  console.log(passed + ' passed, ' + failed + ' failed');
  try { await browser.close(); } catch (e) { /* already closed */ }
  process.exit(failed ? 1 : 0);
}
