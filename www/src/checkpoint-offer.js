// The offer to resume the network in training from its checkpoint (after a reload or a restarted
// worker): "Resume training from step S", or "Discard".
import { MSG } from './protocol.js';
import { clock, hide } from './ui.js';
import { taughtPatch } from './state.js';

const NET = 'training';

/** Resumes from the checkpoint in IndexedDB; `run` says whether training starts at once. The
 * charts keep the history of the run the checkpoint came from, if they still plot it. */
export async function resumeTraining({ store, client, charts }, run = true) {
  const msg = await client.request({ type: MSG.RESUME, net: NET, run });
  const { chartsStale, plottedCheckpoint } = store.get();
  if (chartsStale && msg.savedAt === plottedCheckpoint) charts.truncate(msg.step);
  else charts.reset();
  store.set({
    ...taughtPatch(store.get(), NET, false),
    chartsStale: false,
    plottedCheckpoint: msg.savedAt,
    offer: null,
    notice: null,
    diverged: null,
    error: null,
    accuracy: null,
    training: msg,
    requested: null,
    settings: msg.settings,
    flash: `Resumed training from step ${msg.step.toLocaleString('en')}`,
  });
  return msg;
}

/** Binds the offer's buttons and draws it from the state's `offer`. */
export function bindCheckpointOffer({ ui, store, client, charts }) {
  // Resume waits while the checkpoint cannot be restored on the digits loaded now (the worker
  // asks the core: the offer's `fits`), and both buttons while a request about it is out.
  let blocked = false;
  let pending = false;
  const enable = () => {
    ui.resume.disabled = blocked || pending;
    ui.discard.disabled = pending;
  };
  const busy = (on) => {
    pending = on;
    enable();
  };
  ui.resume.addEventListener('click', async () => {
    busy(true);
    try {
      await resumeTraining({ store, client, charts });
    } catch (error) {
      store.set({ error: `Could not resume from the checkpoint: ${error.message}` });
    } finally {
      busy(false);
    }
  });
  ui.discard.addEventListener('click', async () => {
    busy(true);
    try {
      await client.request({ type: MSG.DISCARD_CHECKPOINT, net: NET });
      store.set({ offer: null, notice: null, saved: null });
    } catch (error) {
      store.set({ error: `Could not discard the checkpoint: ${error.message}` });
    } finally {
      busy(false);
    }
  });

  store.subscribe((state, previous) => {
    if (state.offer === previous.offer && state.reloadingFiles === previous.reloadingFiles) return;
    const { offer } = state;
    if (!offer) {
      hide(ui.offer);
      return;
    }
    ui.resume.textContent = `Resume training from step ${offer.step.toLocaleString('en')} (saved ${clock(offer.savedAt)})`;
    const notes = ['A checkpoint of the network in training is saved in this browser.'];
    if (state.reloadingFiles) notes.push('It can be resumed once your MNIST files are loaded into the restarted worker again.');
    else if (offer.unreadable) notes.push(`It cannot be resumed: ${offer.unreadable}.`);
    else if (!offer.fits) {
      const trainedOn = offer.dataSource ? `on ${offer.dataSource}, not on the digits loaded now` : 'on other digits than those loaded now';
      notes.push(
        `It was trained ${trainedOn}: to resume it, load those digits again (drop the same MNIST files here, or reload the page for the site's own digits).`,
      );
    }
    notes.push('Training a new network replaces it.');
    ui.offerNote.textContent = notes.join(' ');
    blocked = state.reloadingFiles || !offer.fits;
    enable();
    ui.offer.dataset.step = String(offer.step);
    ui.offer.hidden = false;
  });
}
