// Promise helpers the Node check scripts share.
'use strict';

// within rejects when p has not settled after ms milliseconds, saying what
// was awaited; otherwise it settles as p does.
exports.within = function (p, what, ms) {
  var timer;
  var t = new Promise(function (_, reject) {
    timer = setTimeout(function () { reject(new Error('timeout after ' + ms + ' ms: ' + what)); }, ms);
  });
  return Promise.race([p, t]).finally(function () { clearTimeout(timer); });
};

// sleep resolves after ms milliseconds.
exports.sleep = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };
