/*
 * FactoryLab kernel jobs: a kernel that runs as a Slurm job of its own says why it
 * waits (Slurm's reason in plain words, the place in line, the expected start), can be
 * cancelled while it waits, says where it started, and warns before its job ends.
 *
 * The session's server has pending kernels: the Lab's connection to a kernel waits
 * until its job runs. A browser or a proxy may give up on a wait that long, and
 * JupyterLab stops retrying after a few tries; when the job starts, a connection that
 * gave up is made again.
 *
 * Facts come from the session's server extension (GET /factorylab/kernels), which
 * reads the factorylab-slurm kernel provisioners of this server.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISessionContext, Notification } from '@jupyterlab/apputils';

import { call, format } from './api';

/** One kernel job, as ``GET /factorylab/kernels`` lists it. */
interface IKernelJob {
  id: string;
  job_id: string | null;
  state: string;
  message: string;
  node?: string | null;
  ends_at?: number | null;
}

/** Warn this long before a kernel job's end (seconds). */
const WARNINGS = [600, 120];
/** Poll this often while a kernel job waits or the tab is seen, else (milliseconds). */
const PENDING_POLL = 2000;
const STEADY_POLL = 3000;
const HIDDEN_POLL = 30000;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'factorylab-session:kernel-jobs',
  description: 'Says why a kernel job waits, cancels it, and warns before it ends.',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    const waiting = new Map<string, string>(); // kernel id -> notification id
    const warned = new Set<string>(); // keys: job id, colon, seconds before the end

    function cancel(job: IKernelJob): void {
      void call<object>('kernels/' + job.id + '/cancel', { method: 'POST' });
    }

    function showWaiting(job: IKernelJob): void {
      const text =
        'Kernel job ' + job.job_id + ' waits in the queue. ' + (job.message || 'Waiting for Slurm.');
      const options = {
        autoClose: false as const,
        actions: [{ label: 'Cancel', callback: () => cancel(job) }]
      };
      const shown = waiting.get(job.id);
      if (shown === undefined) {
        waiting.set(job.id, Notification.emit(text, 'in-progress', options));
      } else {
        Notification.update({ id: shown, message: text, type: 'in-progress', ...options });
      }
    }

    /**
     * Connect again, now, the Lab's connections to this kernel that gave up waiting or
     * wait to try again: to the kernel that now runs, or to hear why it did not start.
     */
    function reconnect(kernelId: string): void {
      for (const area of ['main', 'down'] as const) {
        for (const widget of Array.from(app.shell.widgets(area))) {
          const context = (widget as unknown as { sessionContext?: ISessionContext })
            .sessionContext;
          const kernel = context?.session?.kernel;
          if (kernel && kernel.id === kernelId && kernel.connectionStatus !== 'connected') {
            kernel.reconnect().catch(error => console.warn('factorylab-session:', error));
          }
        }
      }
    }

    function showRunning(job: IKernelJob): void {
      const shown = waiting.get(job.id);
      if (shown !== undefined) {
        waiting.delete(job.id);
        Notification.dismiss(shown);
        reconnect(job.id);
        Notification.success('Kernel job ' + job.job_id + ' started on ' + (job.node || 'its node') + '.', {
          autoClose: 5000
        });
      }
      if (!job.ends_at) {
        return;
      }
      const left = job.ends_at - Date.now() / 1000;
      for (const mark of WARNINGS) {
        const key = job.job_id + ':' + mark;
        if (left <= mark && !warned.has(key)) {
          warned.add(key);
          Notification.warning(
            'Kernel job ' +
              job.job_id +
              ' ends in ' +
              format(left) +
              ', and its variables with it. Save what you need.',
            { autoClose: false }
          );
        }
      }
    }

    async function refresh(): Promise<void> {
      let jobs: IKernelJob[] = [];
      try {
        const result = await call<{ kernels?: IKernelJob[] }>('kernels');
        jobs = (result.ok && result.data.kernels) || [];
      } catch (error) {
        console.warn('factorylab-session:', error);
      }
      const listed = new Set(jobs.map(job => job.id));
      for (const job of jobs) {
        if (job.state === 'pending') {
          showWaiting(job);
        } else {
          showRunning(job);
        }
      }
      for (const [id, shown] of waiting) {
        if (!listed.has(id)) {
          waiting.delete(id); // it did not start (cancelled, or it failed)
          Notification.dismiss(shown);
          reconnect(id);
        }
      }
      const jobIds = new Set(jobs.map(job => String(job.job_id)));
      for (const key of Array.from(warned)) {
        if (!jobIds.has(key.split(':')[0])) {
          warned.delete(key);
        }
      }
      const pending = jobs.some(job => job.state === 'pending');
      const wait = pending ? PENDING_POLL : document.hidden ? HIDDEN_POLL : STEADY_POLL;
      window.setTimeout(() => void refresh(), wait);
    }

    app.restored.then(() => void refresh());
  }
};

export default plugin;
