// The event page's copy buttons: a small enhancement, the page works without it.
// Each button copies the text of the element its data-copy names.
(function () {
  "use strict";
  if (!navigator.clipboard) {
    return;
  }
  var buttons = document.querySelectorAll("button.copy[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(
        function () {
          button.textContent = "copied";
        },
        function () {
          button.textContent = "copy failed";
        }
      );
    });
  });
})();
