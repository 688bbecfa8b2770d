// One trainer per origin: every tab of the page writes its checkpoint under the same name in the
// same IndexedDB, so two tabs training at once would overwrite each other's. The first tab to
// train takes the Web Lock 'lenet-trainer' and keeps it until it closes; another tab that asks
// to train is told why it cannot, and takes the lock over as soon as the first tab is gone.
// (Web Locks: https://w3c.github.io/web-locks/)
const LOCK = 'lenet-trainer';

export const REFUSED =
  'Another tab of this page is training a network already, and two tabs training at once would ' +
  'overwrite each other’s checkpoints, so this tab cannot train. Close that tab (pausing it is not ' +
  'enough): this tab can train as soon as it is closed.';
export const TAKEN_OVER = 'The other tab that was training has closed: this tab can train now.';

/**
 * Guards the buttons that start training (`buttons`): a click goes through once this tab holds
 * the lock, and is held back, with `REFUSED` shown in `notice`, while another tab holds it.
 * Without Web Locks (an old browser) every click goes through.
 */
export function guardTraining({ buttons, notice }) {
  const locks = navigator.locks;
  let held = !locks;
  let waiting = false;
  const say = (text) => {
    notice.textContent = text;
    notice.hidden = !text;
  };
  // Held until the tab closes: resolving would release it.
  const keep = () => {
    held = true;
    return new Promise(() => {});
  };

  function wait() {
    if (waiting) return;
    waiting = true;
    locks.request(LOCK, () => {
      say(TAKEN_OVER);
      return keep();
    });
  }

  for (const button of buttons) {
    button.addEventListener(
      'click',
      (event) => {
        if (held) return;
        event.stopImmediatePropagation();
        event.preventDefault();
        locks
          .request(LOCK, { ifAvailable: true }, (lock) => {
            if (!lock) return null;
            say('');
            // Let the click through, now that this tab may train.
            queueMicrotask(() => button.click());
            return keep();
          })
          .then((granted) => {
            // ifAvailable resolves with the callback's value: null when another tab holds the lock.
            if (granted === null && !held) {
              say(REFUSED);
              wait();
            }
          });
      },
      { capture: true },
    );
  }
  return { held: () => held };
}
