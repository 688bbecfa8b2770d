// The confusion matrix of a network on the held-out digits, from the worker's EVAL messages (its
// `confusion[label][predicted]` and `per_class`), as a real <table>: rows are the true labels,
// columns the network's answers. The network is the one chosen to recognize with; the pretrained
// network is evaluated once, when the panel is first opened. A cell is a button: it asks the
// worker for the held-out digits behind it (MSG.CELL) and shows them, most confident first.
import { MSG } from './protocol.js';

const NAMES = { pretrained: 'the pretrained network', training: 'the network in training' };
const TAUGHT_NAMES = { pretrained: 'the pretrained network + your digits', training: 'the network in training + your digits' };
const capital = (text) => text[0].toUpperCase() + text.slice(1);

/**
 * Fills `panel` (an empty <details>) and keeps it drawn. `store`: the page's state (its
 * `recognizer` picks the network, its `worker` tells when a new worker is ready); `client`: the
 * WorkerClient. Call `addEval(msg)` with every EVAL message.
 */
export class ConfusionPanel {
  constructor({ panel, store, client }) {
    this.store = store;
    this.client = client;
    this.evals = new Map(); // net → the last EVAL message that carried a matrix
    this.askedPretrained = false;
    panel.insertAdjacentHTML(
      'beforeend',
      `<p id="confusion-status" class="muted small" role="status">Open this panel to evaluate the network.</p>
       <div class="table-wrap"><table id="confusion" class="confusion">
         <caption class="small"></caption>
         <thead><tr><th scope="col"><abbr title="true label (rows) by the network's answer (columns)">label \\ answer</abbr></th></tr></thead>
         <tbody></tbody>
       </table></div>
       <div id="cell-digits" class="cell-digits" aria-live="polite"></div>`,
    );
    this.panel = panel;
    this.status = panel.querySelector('#confusion-status');
    this.table = panel.querySelector('#confusion');
    this.caption = this.table.querySelector('caption');
    this.digits = panel.querySelector('#cell-digits');
    const head = this.table.querySelector('thead tr');
    for (let p = 0; p < 10; p++) head.insertAdjacentHTML('beforeend', `<th scope="col">${p}</th>`);
    head.insertAdjacentHTML('beforeend', '<th scope="col">accuracy</th>');
    this.cells = [];
    this.rowAccuracy = [];
    const body = this.table.querySelector('tbody');
    for (let label = 0; label < 10; label++) {
      const tr = document.createElement('tr');
      tr.innerHTML = `<th scope="row">${label}</th>`;
      const row = [];
      for (let predicted = 0; predicted < 10; predicted++) {
        const td = document.createElement('td');
        const button = document.createElement('button');
        button.type = 'button';
        button.dataset.label = String(label);
        button.dataset.predicted = String(predicted);
        button.textContent = '–';
        button.addEventListener('click', () => this.#open(label, predicted));
        if (label === predicted) td.className = 'diagonal';
        td.append(button);
        tr.append(td);
        row.push({ td, button });
      }
      const acc = document.createElement('td');
      acc.className = 'accuracy';
      tr.append(acc);
      this.rowAccuracy.push(acc);
      this.cells.push(row);
      body.append(tr);
    }
    panel.addEventListener('toggle', () => {
      if (panel.open) this.#askPretrained();
    });
    store.subscribe((state, previous) => {
      if (state.taught !== previous.taught) {
        // Taught, or back to other weights: the last matrix measured the network it was before.
        for (const net of Object.keys(state.taught)) if (state.taught[net] !== previous.taught[net]) this.evals.delete(net);
      }
      if (state.recognizer !== previous.recognizer || state.taught !== previous.taught) this.#draw();
      // A restarted worker lost the request, and its pretrained network is evaluated afresh.
      if (state.worker === 'ready' && previous.worker === 'restarting' && this.askedPretrained) {
        this.askedPretrained = false;
        this.#askPretrained();
      }
    });
    this.#draw();
  }

  /** An EVAL message from the worker. */
  addEval(msg) {
    if (!msg.confusion) return;
    this.evals.set(msg.net, msg);
    if (msg.net === this.store.get().recognizer) this.#draw();
  }

  /** How network `net` is named: as taught, once Teach has tuned it. */
  #name(net) {
    return (this.store.get().taught[net] ? TAUGHT_NAMES : NAMES)[net];
  }

  #askPretrained() {
    if (this.askedPretrained || !this.panel.open || !this.store.get().pretrainedAvailable) return;
    this.askedPretrained = true;
    this.client.post({ type: MSG.EVALUATE, net: 'pretrained' });
    this.#draw();
  }

  #draw() {
    const net = this.store.get().recognizer;
    const e = this.evals.get(net);
    this.table.dataset.net = net;
    this.table.dataset.step = e ? String(e.step) : '';
    if (!e) {
      this.status.textContent = `Measuring ${this.#name(net)} on the held-out digits…`;
      this.caption.textContent = '';
      for (const row of this.cells) for (const { button, td } of row) {
        button.textContent = '–';
        button.disabled = true;
        td.style.backgroundColor = '';
      }
      for (const acc of this.rowAccuracy) acc.textContent = '–';
      return;
    }
    this.status.textContent = '';
    this.caption.textContent =
      `${capital(this.#name(net))} at step ${e.step.toLocaleString('en')}: ${(e.accuracy * 100).toFixed(1)} % of ` +
      `${e.count.toLocaleString('en')} held-out digits right. Rows: the true label; columns: the network's answer. ` +
      'Choose a cell to see its digits.';
    e.confusion.forEach((counts, label) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      counts.forEach((count, predicted) => {
        const { button, td } = this.cells[label][predicted];
        button.textContent = String(count);
        button.disabled = count === 0;
        button.setAttribute('aria-label', `${count} digits ${label} read as ${predicted}`);
        const share = count / total;
        // Strong blue on the diagonal, red elsewhere, by the share of the row.
        const strength = label === predicted ? share : Math.min(1, share * 5);
        td.style.backgroundColor = count
          ? label === predicted
            ? `rgb(79 70 229 / ${(0.1 + 0.5 * strength).toFixed(2)})`
            : `rgb(220 38 38 / ${(0.1 + 0.5 * strength).toFixed(2)})`
          : '';
      });
      this.rowAccuracy[label].textContent = `${(e.per_class[label] * 100).toFixed(1)} %`;
    });
  }

  async #open(label, predicted) {
    const net = this.store.get().recognizer;
    const heading = `${label} read as ${predicted}`;
    this.digits.dataset.cell = '';
    this.digits.innerHTML = '<p class="muted small"></p>';
    this.digits.firstChild.textContent = `Finding the held-out digits ${heading}…`;
    let answer;
    try {
      answer = await this.client.request({ type: MSG.CELL, net, label, predicted });
    } catch (error) {
      this.digits.firstChild.textContent = `The digits could not be found: ${error.message}`;
      return;
    }
    const { digits, total, step } = answer;
    this.digits.innerHTML = '<h3 class="small"></h3><ol class="digit-list"></ol>';
    this.digits.querySelector('h3').textContent =
      `${total} held-out ${total === 1 ? 'digit' : 'digits'} ${heading} by ${this.#name(net)} now (step ${step.toLocaleString('en')})` +
      (total > digits.length ? `; the ${digits.length} most confident:` : total ? ', most confident first:' : '.');
    const list = this.digits.querySelector('ol');
    for (const { index, pixels, probabilities } of digits) {
      const li = document.createElement('li');
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 28;
      const ctx = canvas.getContext('2d');
      const image = ctx.createImageData(28, 28);
      for (let i = 0; i < 784; i++) {
        image.data[i * 4] = image.data[i * 4 + 1] = image.data[i * 4 + 2] = pixels[i];
        image.data[i * 4 + 3] = 255;
      }
      ctx.putImageData(image, 0, 0);
      const top = probabilities
        .map((p, d) => [p, d])
        .sort((a, b) => b[0] - a[0])
        .slice(0, 2)
        .filter(([p]) => p >= 0.01);
      const words = top.map(([p, d]) => `${d}: ${(p * 100).toFixed(1)} %`).join(', ');
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', `held-out digit ${index}, labelled ${label}: ${words}`);
      const caption = document.createElement('span');
      caption.textContent = words;
      li.append(canvas, caption);
      list.append(li);
    }
    this.digits.dataset.cell = `${label},${predicted}`;
  }
}
