// Keeps pages current with server-sent events (see live.py). The logs page
// (data-live="logs") gets new rows at the top of its table; other live pages
// (data-live="refresh") fetch themselves again when the store changed. Only
// HTML our own server rendered (escaped) is parsed, and never as a live document.
"use strict";

(() => {
  const MAX_LOG_ROWS = 2000;
  const page = document.getElementById("page");
  const status = document.getElementById("live-status");
  if (!page || !page.dataset.live || typeof EventSource === "undefined") {
    return;
  }

  const showState = (state) => {
    if (status) status.dataset.state = state;
  };

  // Opens `url`, hands each `eventName` event to `handle`; after a lost
  // connection comes back (EventSource reconnects by itself) calls `resumed`.
  const follow = (url, eventName, handle, resumed) => {
    const source = new EventSource(url);
    let lost = false;
    source.addEventListener("open", () => {
      showState("on");
      if (lost && resumed) resumed();
      lost = false;
    });
    source.addEventListener("error", () => {
      showState("lost");
      lost = true;
    });
    source.addEventListener(eventName, handle);
    window.addEventListener("pagehide", () => source.close());
  };

  const parse = (html) => new DOMParser().parseFromString(html, "text/html");

  const followLogs = () => {
    const body = document.getElementById("log-rows");
    if (!body) return;
    const filters = page.dataset.filters ? page.dataset.filters + "&" : "";
    const url = "/events/logs?" + filters + "cursor=" + encodeURIComponent(page.dataset.cursor);
    // The server resumes from the last event's id: nothing to do on reconnect.
    follow(url, "rows", (event) => {
      const parsed = parse("<table><tbody>" + event.data + "</tbody></table>");
      const rows = document.createDocumentFragment();
      for (const row of parsed.querySelectorAll("tbody > tr")) {
        const fresh = document.importNode(row, true);
        fresh.classList.add("fresh");
        rows.appendChild(fresh);
      }
      body.insertBefore(rows, body.firstChild); // newest first, as the page
      while (body.rows.length > MAX_LOG_ROWS) body.deleteRow(-1);
      const empty = document.getElementById("logs-empty");
      if (empty) empty.remove();
    });
  };

  // The user's choices in the page's forms that are not submitted yet (a
  // field whose value is no longer what the page came with), and the field
  // being typed in: a refresh puts them back into the fresh page, so that
  // the rows update while someone is still choosing a filter.
  const changed = (field) => {
    if (field.type === "checkbox" || field.type === "radio") {
      return field.checked !== field.defaultChecked;
    }
    if (field.tagName === "SELECT") {
      return Array.from(field.options).some((option) => option.selected !== option.defaultSelected);
    }
    return field.value !== field.defaultValue;
  };
  const fieldNamed = (name, value) => {
    const byName = `[name="${CSS.escape(name)}"]`;
    return page.querySelector(value === undefined ? byName : `${byName}[value="${CSS.escape(value)}"]`);
  };
  const choices = () => {
    const fields = Array.from(page.querySelectorAll("input[name], select[name], textarea[name]"));
    const kept = fields.filter(changed).map((field) => ({
      name: field.name,
      checkable: field.type === "checkbox" || field.type === "radio",
      value: field.value,
      checked: field.checked,
      selected: field.tagName === "SELECT" ? Array.from(field.selectedOptions, (o) => o.value) : null,
    }));
    const active = document.activeElement;
    const focused = active && page.contains(active) && active.name ? active : null;
    return { kept, focused };
  };
  const restore = ({ kept, focused }) => {
    for (const choice of kept) {
      const field = fieldNamed(choice.name, choice.checkable ? choice.value : undefined);
      if (!field) continue;
      if (choice.checkable) field.checked = choice.checked;
      else if (choice.selected) {
        for (const option of field.options) option.selected = choice.selected.includes(option.value);
      } else field.value = choice.value;
    }
    if (focused) {
      const checkable = focused.type === "checkbox" || focused.type === "radio";
      const field = fieldNamed(focused.name, checkable ? focused.value : undefined);
      if (field) {
        field.focus();
        try {
          field.setSelectionRange(focused.selectionStart, focused.selectionEnd);
        } catch {
          // not a text field: nothing to put back
        }
      }
    }
  };

  const followChanges = () => {
    let busy = false;
    let again = false;
    const refresh = async () => {
      if (busy) {
        again = true; // one more after this one, however many changes come
        return;
      }
      busy = true;
      try {
        const response = await fetch(location.href, { headers: { Accept: "text/html" } });
        if (!response.ok) throw new Error("HTTP " + response.status);
        const fresh = parse(await response.text()).getElementById("page");
        if (fresh) {
          const nodes = Array.from(fresh.childNodes, (node) => document.importNode(node, true));
          const unsubmitted = choices();
          page.replaceChildren(...nodes);
          restore(unsubmitted);
        }
        showState("on");
      } catch {
        showState("lost");
      } finally {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    };
    // A connection lost a while may have missed changes: look once when it is back.
    follow("/events/changes", "changed", refresh, refresh);
  };

  if (page.dataset.live === "logs") followLogs();
  else if (page.dataset.live === "refresh") followChanges();
})();
