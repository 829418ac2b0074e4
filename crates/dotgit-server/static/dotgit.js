// dotgit: the dashboard's one script, served from this origin (CSP `script-src 'self'`).
// Copy buttons: <button data-copy="ID" hidden> copies the value of field #ID and reports in
// #ID-status. Without JavaScript the buttons stay hidden and the secret is still in a
// read-only field that can be selected and copied by hand.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var id = button.getAttribute("data-copy");
    var field = document.getElementById(id);
    var status = document.getElementById(id + "-status");
    if (!field) {
      return;
    }
    var say = function (text) {
      if (status) {
        status.textContent = text;
      }
    };
    var byHand = function () {
      field.focus();
      field.select();
      say("Selected: press Ctrl+C (or ⌘C) to copy.");
    };
    field.addEventListener("focus", function () {
      field.select();
    });
    button.hidden = false;
    button.addEventListener("click", function () {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () {
          say("Copied to the clipboard.");
        }, byHand);
      } else {
        byHand();
      }
    });
  });
});
