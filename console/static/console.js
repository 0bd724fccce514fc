// Filet console: live inbox (server-sent events), a count in the title, browser
// notifications when allowed. No framework; the pages work without it.
(function () {
  'use strict';
  var list = document.getElementById('threads');
  var notify = document.getElementById('notify');
  if (notify && 'Notification' in window && Notification.permission === 'default') {
    notify.hidden = false;
    notify.addEventListener('click', function () {
      Notification.requestPermission().then(function () { notify.hidden = true; });
    });
  }
  var sound = document.getElementById('sound');
  if (sound) {
    try { sound.checked = window.localStorage.getItem('filet-sound') === 'on'; } catch (e) { /* no storage */ }
    sound.addEventListener('change', function () {
      try { window.localStorage.setItem('filet-sound', sound.checked ? 'on' : 'off'); } catch (e) { /* no storage */ }
    });
  }
  var page = document.getElementById('thread-page');
  if (page && window.EventSource) {
    // An alert's page: a follow-up of this alert (update, located, cancel) reloads it.
    var thread = new EventSource('/events?after=' + encodeURIComponent(page.dataset.after || '0'));
    thread.addEventListener('alert', function (ev) {
      if (JSON.parse(ev.data).root === page.dataset.root) { window.location.reload(); }
    });
  }
  var job = document.getElementById('audit-job');
  if (job && job.dataset.state === 'running' && window.fetch) {
    // The audit page: the pull job's progress, asked for until the job ends; then the page
    // again, with the result.
    var status = document.getElementById('audit-status');
    var bar = document.getElementById('audit-progress');
    var poll = function () {
      window.fetch('/audit/progress', { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.json(); })
        .then(function (m) {
          if (m.state !== 'running') { window.location.replace('/audit'); return; }
          if (status) { status.textContent = m.text; }
          if (bar && m.total > 0) { bar.max = m.total; bar.value = m.done; bar.textContent = m.text; }
          window.setTimeout(poll, 300);
        })
        .catch(function () { window.setTimeout(poll, 2000); });
    };
    window.setTimeout(poll, 300);
  }
  if (!list || !window.EventSource) { return; }
  var base = document.title;
  var fresh = 0;
  var live = document.getElementById('live');
  var es = new EventSource('/events?after=' + encodeURIComponent(list.dataset.after || '0'));
  es.addEventListener('open', function () { if (live) { live.textContent = live.dataset.on; } });
  es.addEventListener('error', function () { if (live) { live.textContent = live.dataset.off; } });
  es.addEventListener('alert', function (ev) {
    var m = JSON.parse(ev.data);
    var old = document.getElementById('thread-' + m.root);
    var checked = old && old.querySelector('input[type=checkbox]:checked');
    if (old) { old.remove(); }
    list.insertAdjacentHTML('afterbegin', m.html);
    if (checked) {
      var box = document.getElementById('select-' + m.root);
      if (box) { box.checked = true; }
    }
    var empty = document.getElementById('empty');
    if (empty) { empty.remove(); }
    fresh += 1;
    document.title = '(' + fresh + ') ' + base;
    if (sound && sound.checked) {
      var p = new Audio('/static/alert.wav').play();
      if (p && p.catch) { p.catch(function () { /* the browser may refuse before a click */ }); }
    }
    if ('Notification' in window && Notification.permission === 'granted') {
      try { new Notification(m.title); } catch (e) { /* some browsers allow it only from a worker */ }
    }
  });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) { fresh = 0; document.title = base; }
  });
}());
