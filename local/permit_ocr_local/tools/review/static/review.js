// Keyboard: Esc skips; the focused field's box is highlighted on the image. Served from 'self' (strict CSP).
"use strict";
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") {
    const skip = document.getElementById("skip");
    if (skip) { ev.preventDefault(); skip.click(); }
  }
});
document.addEventListener("focusin", (ev) => {
  const name = ev.target && ev.target.dataset ? ev.target.dataset.field : undefined;
  document.querySelectorAll("polygon.box").forEach((p) => {
    p.classList.toggle("active", p.dataset.field === name);
  });
});
// autofocus happens before this deferred script runs: mark the focused field's box now
document.addEventListener("DOMContentLoaded", () => {
  const el = document.activeElement;
  if (el) { el.dispatchEvent(new FocusEvent("focusin", { bubbles: true })); }
});
