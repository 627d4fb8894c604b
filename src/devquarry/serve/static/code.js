// Keyboard coding: a code's key picks it, Enter saves, x / u / n / z / Backspace / Esc as the page says.
// Thread text never passes through here: the script only reads the buttons' data attributes.
// A label is sent with fetch and the next thread swapped in (no full page load: coding stays quick);
// without fetch, or when it fails, the form posts as a plain form does.
(function () {
  "use strict";
  var form, undo, note, unsure, shown, top;
  var picked = [];
  var parent = null; // a category whose subcategories are offered
  var sending = false;

  function bind() {
    form = document.getElementById("label-form");
    undo = document.getElementById("undo-form");
    note = document.getElementById("note");
    unsure = document.getElementById("unsure");
    shown = document.getElementById("selected");
    top = document.getElementById("keys-top");
    picked = [];
    parent = null;
    sending = false;
    show();
  }

  function post(f) {
    if (!window.fetch || !window.DOMParser) {
      f.submit();
      return;
    }
    var body = new URLSearchParams(new FormData(f));
    fetch(f.action, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var next = doc.getElementById("coding");
          if (!r.ok || !next) {
            var err = doc.getElementById("error");
            var box = document.getElementById("message") || document.createElement("p");
            box.id = "message";
            box.className = "error";
            box.textContent = err ? err.textContent : "the label was not saved (" + r.status + ")";
            document.getElementById("coding").prepend(box);
            sending = false;
            return;
          }
          document.getElementById("coding").replaceWith(document.adoptNode(next));
          document.title = doc.title;
          history.replaceState(null, "", r.url);
          bind();
        });
      })
      .catch(function () {
        f.submit();
      });
  }

  function panel() {
    if (parent) {
      return form.querySelector('.keys.sub[data-parent="' + CSS.escape(parent) + '"]');
    }
    return top;
  }

  function show() {
    if (!form) return;
    if (!shown) return;
    shown.textContent = picked.length ? "codes: " + picked.join(", ") + " (Enter saves)" : "";
    var subs = form.querySelectorAll(".keys.sub");
    for (var i = 0; i < subs.length; i++) subs[i].hidden = subs[i].getAttribute("data-parent") !== parent;
    top.hidden = parent !== null;
    var buttons = form.querySelectorAll("button.code");
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].classList.toggle("picked", picked.indexOf(buttons[j].getAttribute("data-code")) >= 0);
    }
  }

  function pick(code) {
    if (parent && picked[picked.length - 1] === parent) {
      picked[picked.length - 1] = code; // the subcategory stands for its category
    } else if (picked.indexOf(code) < 0) {
      picked.push(code);
    }
    var sub = form.querySelector('.keys.sub[data-parent="' + CSS.escape(code) + '"]');
    parent = sub && !parent ? code : null;
    show();
  }

  function send(irrelevant) {
    if (sending) return;
    if (!irrelevant && !picked.length) return;
    sending = true;
    form.querySelector("#irrelevant").value = irrelevant ? "1" : "0";
    var old = form.querySelectorAll("input.picked-code");
    for (var i = 0; i < old.length; i++) old[i].remove();
    if (!irrelevant) {
      picked.forEach(function (c) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "code";
        input.value = c;
        input.className = "picked-code";
        form.appendChild(input);
      });
    }
    post(form);
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("#label-form button.code");
    if (b) {
      e.preventDefault();
      pick(b.getAttribute("data-code"));
    }
  });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || sending) return;
    if (e.target === note) {
      if (e.key === "Escape") note.blur();
      if (e.key === "Enter") {
        e.preventDefault();
        note.blur();
        send(false);
      }
      return;
    }
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT" || e.target.tagName === "TEXTAREA")) return;
    var key = e.key;
    if (key === "z" && undo && !undo.querySelector("button").disabled) {
      e.preventDefault();
      sending = true;
      post(undo);
      return;
    }
    if (!form) return;
    if (key === "Enter") {
      e.preventDefault();
      send(false);
    } else if (key === "x") {
      e.preventDefault();
      send(true);
    } else if (key === "u") {
      unsure.checked = !unsure.checked;
    } else if (key === "n") {
      e.preventDefault();
      note.focus();
    } else if (key === "Escape") {
      parent = null;
      show();
    } else if (key === "Backspace") {
      e.preventDefault();
      picked.pop();
      parent = null;
      show();
    } else {
      var b = panel().querySelector('button[data-key="' + CSS.escape(key) + '"]');
      if (b) {
        e.preventDefault();
        pick(b.getAttribute("data-code"));
      }
    }
  });
  bind();
})();
