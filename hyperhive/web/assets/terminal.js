// window.HiveTerminal.create(opts): a sticky-bottom live log with a "↓ N new" pill.
// Rows are keyed: adding a key twice updates the row in place instead of repeating it, which
// is how history backfill and the live stream (and a daemon restart) never show a row twice.
// Pages render rows themselves (DOM nodes built from text); the terminal owns scrolling.
(function () {
  "use strict";
  function create(opts) {
    const wrap = opts.el;
    const live = wrap.querySelector(".live");
    const pill = wrap.querySelector(".tail-pill");
    const rows = new Map();
    const marks = new Set(); // keys seen that render no row (so they are not taken twice)
    let unseen = 0;
    const atBottom = () => live.scrollHeight - live.scrollTop - live.clientHeight < 24;
    function showPill() {
      pill.textContent = "↓ " + unseen + " new";
      pill.classList.toggle("show", unseen > 0);
    }
    function toBottom() { live.scrollTop = live.scrollHeight; unseen = 0; showPill(); }
    live.addEventListener("scroll", () => { if (atBottom()) { unseen = 0; showPill(); } });
    pill.addEventListener("click", toBottom);
    function put(key, node, order) {
      const stick = atBottom();
      node.dataset.key = key;
      node.dataset.order = String(order);
      const old = rows.get(key);
      if (old) { old.replaceWith(node); rows.set(key, node); return false; }
      rows.set(key, node);
      // Keep rows in order (history arrives after live rows, ids can arrive late).
      let before = null;
      for (let n = live.lastElementChild; n; n = n.previousElementSibling) {
        if (Number(n.dataset.order) <= order) break;
        before = n;
      }
      live.insertBefore(node, before);
      if (stick) toBottom(); else { unseen += 1; showPill(); }
      return true;
    }
    return {
      put: put,
      has: (key) => rows.has(key) || marks.has(key),
      mark: (key) => { marks.add(key); },
      get: (key) => rows.get(key),
      size: () => rows.size,
      toBottom: toBottom,
    };
  }
  window.HiveTerminal = { create: create };
})();
