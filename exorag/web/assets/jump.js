// Clicking an in-page `[n]` link (#exorag-...) unfolds, scrolls to and highlights its source card.
document.addEventListener('click', function (event) {
  var link = event.target.closest && event.target.closest('a[href^="#exorag-"]');
  if (!link) { return; }
  event.preventDefault();
  event.stopPropagation();
  var card = document.getElementById(link.getAttribute('href').slice(1));
  if (!card) { return; }
  var fold = card.closest('details');
  if (fold) { fold.open = true; }
  document.querySelectorAll('.exorag-active').forEach(function (el) { el.classList.remove('exorag-active'); });
  card.classList.add('exorag-active');
  card.scrollIntoView({block: 'center'});
}, true);
