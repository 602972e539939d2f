// Kiro subscriptions console: progressive enhancement only. Without this file every page still
// works (dialogs are rendered open by the server, search submits a form).
"use strict";
document.documentElement.classList.add("js");

function openDialogs() {
  for (const d of document.querySelectorAll("dialog[data-modal][open]")) {
    // A server-rendered open dialog becomes modal: focus is trapped and Escape closes it.
    d.close();
    d.showModal();
    d.addEventListener("cancel", (e) => {
      const cancel = d.querySelector("a.secondary");
      if (cancel) {
        e.preventDefault();
        window.location.assign(cancel.href);
      }
    });
  }
}

function combobox(form) {
  const input = form.querySelector("[role=combobox]");
  const list = form.querySelector("[role=listbox]");
  const picked = document.getElementById("picked");
  const endpoint = form.dataset.suggest;
  if (!input || !list || !picked || !endpoint) return;
  let timer = 0;
  let active = -1;
  let seq = 0;

  function options() {
    return Array.from(list.querySelectorAll("[role=option]"));
  }
  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }
  function highlight(i) {
    const opts = options();
    if (!opts.length) return;
    active = (i + opts.length) % opts.length;
    opts.forEach((o, j) => o.setAttribute("aria-selected", j === active ? "true" : "false"));
    input.setAttribute("aria-activedescendant", opts[active].id);
    opts[active].scrollIntoView({ block: "nearest" });
  }
  function pick(option) {
    const id = option.dataset.id;
    const boxId = "pick-" + id;
    let box = document.getElementById(boxId);
    if (!box) {
      const row = document.createElement("div");
      row.className = "pick";
      box = document.createElement("input");
      box.type = "checkbox";
      box.name = "principalId";
      box.value = id;
      box.id = boxId;
      const label = document.createElement("label");
      label.htmlFor = boxId;
      label.textContent = option.dataset.name;
      row.append(box, label);
      picked.append(row);
    }
    box.checked = true;
    input.value = "";
    close();
    input.focus();
  }
  async function suggest() {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) {
      close();
      return;
    }
    let items = [];
    try {
      const res = await fetch(endpoint + "?q=" + encodeURIComponent(q), { headers: { accept: "application/json" } });
      if (res.ok) items = (await res.json()).items || [];
    } catch (_) {
      items = [];
    }
    if (mine !== seq) return; // a newer keystroke is on its way
    list.replaceChildren();
    items.forEach((item, i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.id = "suggestion-" + i;
      li.dataset.id = item.id;
      li.dataset.name = item.name;
      li.setAttribute("aria-selected", "false");
      li.textContent = item.detail ? item.name + " — " + item.detail : item.name;
      li.addEventListener("mousedown", (e) => e.preventDefault());
      li.addEventListener("click", () => pick(li));
      list.append(li);
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No match";
      list.append(li);
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  }
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 150);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (list.hidden) suggest();
      else highlight(active + 1);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      highlight(active - 1);
    } else if (e.key === "Enter") {
      e.preventDefault();
      const opts = options();
      if (active >= 0 && opts[active]) pick(opts[active]);
      else suggest();
    } else if (e.key === "Escape" && !list.hidden) {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  form.addEventListener("submit", (e) => e.preventDefault());
}

document.addEventListener("DOMContentLoaded", () => {
  openDialogs();
  document.querySelectorAll("form[data-suggest]").forEach(combobox);
});
