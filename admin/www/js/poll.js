// Repeats `fn` every `seconds` while the page is shown; returns the stop function the router
// calls when the page changes. A failing turn is reported and the polling goes on.

export function poll(ctx, seconds, fn) {
  let timer = null;
  let stopped = false;
  const turn = async () => {
    try {
      await fn();
    } catch (e) {
      ctx.fail(e);
    }
    if (!stopped) timer = setTimeout(turn, seconds * 1000);
  };
  turn();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
