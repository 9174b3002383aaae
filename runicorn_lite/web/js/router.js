// Moving between views. The URL is the state of every view (history API); the shell (main.js)
// says how a URL is drawn, views only ask to go somewhere or record the state they show.

let draw = () => {};

/** The shell's function that draws the view of the current URL. */
export function onNavigate(fn) {
  draw = fn;
}

/** Goes to ``url`` (pushing history unless ``replace``), then draws its view. */
export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (target.href !== location.href) {
    history[replace ? "replaceState" : "pushState"](null, "", target.pathname + target.search + target.hash);
  }
  return draw();
}

/** Changes the query of the current URL without drawing (state the view already shows). */
export function setQuery(params, { push = false } = {}) {
  const url = new URL(location.href);
  url.search = params.toString();
  history[push ? "pushState" : "replaceState"](null, "", url.pathname + url.search);
}
