/*
 * Calls to the session's server extension (factorylab_session), and how times read.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface ICallResult<T> {
  ok: boolean;
  data: T;
}

/** "1 h 05 min" from an hour on, else "5 min 09 s"; never negative. */
export function format(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0
    ? h + ' h ' + String(m).padStart(2, '0') + ' min'
    : m + ' min ' + String(s % 60).padStart(2, '0') + ' s';
}

/** Call the session's server extension under ``<base url>/factorylab/``. */
export async function call<T>(path: string, init?: RequestInit): Promise<ICallResult<T>> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'factorylab', path);
  const response = await ServerConnection.makeRequest(url, init || {}, settings);
  const data = (await response.json().catch(() => ({}))) as T;
  return { ok: response.ok, data: data };
}
