/*
 * FactoryLab session: time left in the status bar, warnings before the end, and
 * "extend" (a click on the item, or the command palette).
 *
 * Built with @jupyterlab/builder into a federated extension that takes JupyterLab's
 * own packages from its shared scope (build.sh; the deploy and the Apptainer images
 * run it). Facts come from the session's server extension (factorylab_session), which
 * asks the hub; the hub applies the site's policy.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { call, format } from './api';
import kernelJobs from './kernels';

/** What ``GET /factorylab/session`` (and a successful extend) answers. */
interface ISessionFacts {
  time_left_seconds?: number;
  extend_by_seconds?: number;
  extendable_until?: number | string | null;
  warnings_at_seconds?: number[];
  ends_at?: number;
  message?: string;
}


const PLUGIN_ID = 'factorylab-session:time-left';
const EXTEND_COMMAND = 'factorylab:extend-session';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "Shows the session's time left, warns before the end, and extends it.",
  autoStart: true,
  requires: [IStatusBar],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, bar: IStatusBar, palette: ICommandPalette | null): void => {
    const node = document.createElement('span');
    node.className = 'factorylab-time-left';
    node.title = 'Time left in this session (click to extend)';
    node.style.cursor = 'pointer';
    node.style.padding = '0 6px';
    node.textContent = 'Time left: …';
    const item = new Widget({ node: node });
    item.id = 'factorylab-time-left';
    let facts: ISessionFacts | null = null;
    let fetchedAt = 0;
    const warned = new Set<number>();

    async function extend(): Promise<void> {
      const choice = await showDialog({
        title: 'Extend this session?',
        body:
          facts && facts.extend_by_seconds
            ? 'Add ' + format(facts.extend_by_seconds) + ", within your site's limits."
            : "Ask for more time, within your site's limits.",
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Extend' })]
      });
      if (!choice.button.accept) {
        return;
      }
      const result = await call<ISessionFacts>('session/extend', { method: 'POST', body: '{}' });
      if (result.ok) {
        facts = result.data;
        fetchedAt = Date.now();
        warned.clear();
        Notification.success(
          'Session extended: ' + format(facts.time_left_seconds as number) + ' left.',
          { autoClose: 5000 }
        );
      } else {
        Notification.error(result.data.message || 'The session could not be extended.', {
          autoClose: false
        });
      }
      render();
    }

    function render(): void {
      if (!facts || facts.time_left_seconds === undefined) {
        node.textContent = 'Time left: unknown';
        return;
      }
      const left = facts.time_left_seconds - (Date.now() - fetchedAt) / 1000;
      node.textContent = 'Time left: ' + format(left);
      node.dataset.timeLeft = String(Math.round(left));
      for (const mark of facts.warnings_at_seconds || []) {
        if (left <= mark && !warned.has(mark)) {
          warned.add(mark);
          const actions: Notification.IAction[] = facts.extendable_until
            ? [{ label: 'Extend', callback: () => void extend() }]
            : [];
          Notification.warning(
            'Your session ends in ' +
              format(left) +
              '. Save your work' +
              (actions.length ? ', or extend it.' : '.'),
            { autoClose: false, actions: actions }
          );
        }
      }
    }

    async function refresh(): Promise<void> {
      try {
        const result = await call<ISessionFacts>('session');
        if (result.ok) {
          facts = result.data;
          fetchedAt = Date.now();
        }
      } catch (error) {
        console.warn('factorylab-session:', error);
      }
      render();
    }

    node.addEventListener('click', () => void extend());
    app.commands.addCommand(EXTEND_COMMAND, {
      label: 'Extend this session',
      execute: extend
    });
    if (palette) {
      palette.addItem({ command: EXTEND_COMMAND, category: 'FactoryLab' });
    }
    bar.registerStatusItem(PLUGIN_ID, { item: item, align: 'left', rank: 5 });
    void refresh();
    window.setInterval(() => void refresh(), 30000);
    window.setInterval(render, 1000);
  }
};

export default [plugin, kernelJobs];
