() => {
  function toTop(el) {
    var box = el.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(box).overflowY))) {
      box = box.parentElement;
    }
    if (box && box !== document.documentElement && box !== document.body) {
      /* 36 px: below the chat's "Chat" label */
      box.scrollTop += el.getBoundingClientRect().top - box.getBoundingClientRect().top - 36;
    }
  }
  function show() {
    var rows = document.querySelectorAll('#exorag-chat .message-row.bot-row');
    if (rows.length) { toTop(rows[rows.length - 1]); }
    var fold = document.querySelector('#exorag-sources details[open]');
    if (fold) { toTop(fold); }
  }
  /* after the chat's own scroll to the bottom, which follows the render */
  setTimeout(show, 100);
  setTimeout(show, 400);
}
