// 书生·浦语 Chain: the puyu-lab chain in a JupyterLab sidebar, and launcher cards for its labs.
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ROUTE = 'puyu-lab/api/chain';
const POLL_MS = 2000;

interface Artifact {
  name: string;
  status: string;
  created: string;
  figures: Record<string, number | string | boolean>;
}

interface Stage {
  key: string;
  zh: string;
  en: string;
  lab: string;
  lab_path: string | null;
  needs: string[];
  status: 'present' | 'stale' | 'missing';
  artifacts: Artifact[];
  checks?: { passed: number; total: number } | null;
}

interface ChainState {
  workspace: string;
  version: string;
  stages: Stage[];
  tour_path: string | null;
  error?: string;
}

const STATUS_LABEL: Record<string, string> = {
  present: '已就绪 present',
  stale: '已过期 stale',
  missing: '缺失 missing'
};

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
  '<g class="jp-icon3" fill="#616161"><circle cx="4" cy="12" r="2.5"/><circle cx="12" cy="6" r="2.5"/>' +
  '<circle cx="20" cy="12" r="2.5"/><circle cx="12" cy="18" r="2.5"/>' +
  '<path d="M5.5 10.5 10.5 7M13.5 7l5 3.5M18.5 13.5l-5 3.5M10.5 17l-5-3.5" stroke="#616161" ' +
  'stroke-width="1.4" fill="none"/></g></svg>';

export const chainIcon = new LabIcon({ name: 'puyu-lab-chain:icon', svgstr: ICON_SVG });

export async function fetchChain(): Promise<ChainState> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, ROUTE);
  const response = await ServerConnection.makeRequest(url, {}, settings);
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch (e) {
    throw new Error(`${ROUTE}: not JSON (${response.status})`);
  }
  if (!response.ok) {
    throw new Error(data.error || data.message || `${ROUTE}: HTTP ${response.status}`);
  }
  return data as ChainState;
}

function el(tag: string, cls?: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function fmt(v: number | string | boolean): string {
  if (typeof v === 'number' && !Number.isInteger(v)) {
    return Number(v.toPrecision(4)).toString();
  }
  return String(v);
}

export class ChainSidebar extends Widget {
  private _version = '';
  private _timer: number | undefined;
  private _list: HTMLElement;
  private _info: HTMLElement;

  constructor(private _open: (path: string) => void) {
    super();
    this.id = 'puyu-lab-chain';
    this.addClass('puyu-chain');
    this.title.icon = chainIcon;
    this.title.caption = '书生·浦语 Chain';
    const head = el('div', 'puyu-chain-head');
    head.appendChild(el('h2', 'puyu-chain-title', '书生·浦语 Chain'));
    const refresh = el('button', 'jp-Button puyu-chain-refresh', '↻');
    refresh.title = '刷新 Refresh';
    refresh.onclick = () => void this.refresh(true);
    head.appendChild(refresh);
    this.node.appendChild(head);
    this._info = el('div', 'puyu-chain-info', '…');
    this.node.appendChild(this._info);
    this._list = el('ol', 'puyu-chain-stages');
    this.node.appendChild(this._list);
  }

  get version(): string {
    return this._version;
  }

  start(): void {
    if (this._timer === undefined) {
      void this.refresh();
      this._timer = window.setInterval(() => void this.refresh(), POLL_MS);
    }
  }

  dispose(): void {
    if (this._timer !== undefined) {
      window.clearInterval(this._timer);
    }
    super.dispose();
  }

  async refresh(force = false): Promise<void> {
    let state: ChainState;
    try {
      state = await fetchChain();
    } catch (e) {
      this._info.textContent = `⚠ ${(e as Error).message}`;
      this._info.classList.add('puyu-chain-error');
      return;
    }
    this._info.classList.remove('puyu-chain-error');
    if (!force && state.version === this._version) {
      return;
    }
    this._version = state.version;
    this.node.dataset.version = state.version;
    this.render(state);
  }

  render(state: ChainState): void {
    this._info.textContent = `工作区 Workspace: ${state.workspace}`;
    this._list.replaceChildren();
    for (const st of state.stages) {
      const li = el('li', `puyu-stage puyu-${st.status}`);
      li.dataset.stage = st.key;
      li.dataset.status = st.status;
      const top = el('div', 'puyu-stage-top');
      top.appendChild(el('span', 'puyu-stage-name', st.zh));
      top.appendChild(el('span', 'puyu-stage-en', st.en));
      top.appendChild(el('span', `puyu-badge puyu-badge-${st.status}`, STATUS_LABEL[st.status] || st.status));
      li.appendChild(top);
      if (st.checks === null) {
        li.appendChild(el('div', 'puyu-checks puyu-checks-pending', '自检 checks …'));
      } else if (st.checks && st.checks.total > 0) {
        const { passed, total } = st.checks;
        const cls = passed === total ? 'puyu-checks-all' : passed > 0 ? 'puyu-checks-some' : 'puyu-checks-none';
        const chk = el('div', `puyu-checks ${cls}`, `自检 checks ${passed}/${total}`);
        chk.dataset.passed = String(passed);
        chk.dataset.total = String(total);
        chk.title = '`puyu-lab check` shows each check, its figure and its hint';
        li.appendChild(chk);
      }
      for (const a of st.artifacts) {
        const row = el('div', 'puyu-artifact');
        row.dataset.artifact = a.name;
        row.appendChild(el('code', undefined, a.name));
        const figs = Object.entries(a.figures || {})
          .map(([k, v]) => `${k}=${fmt(v)}`)
          .join(', ');
        if (figs) {
          row.appendChild(el('span', 'puyu-figures', figs));
        }
        if (a.status === 'stale') {
          row.appendChild(el('span', 'puyu-badge puyu-badge-stale', STATUS_LABEL.stale));
        }
        li.appendChild(row);
      }
      if (!st.artifacts.length && st.needs.length) {
        li.appendChild(el('div', 'puyu-needs', `需要 needs: ${st.needs.join(', ')}`));
      }
      const btn = el('button', 'jp-Button puyu-open-lab', `打开实验 Open ${st.lab}`) as HTMLButtonElement;
      btn.dataset.lab = st.lab_path || '';
      btn.disabled = !st.lab_path;
      btn.onclick = () => st.lab_path && this._open(st.lab_path);
      li.appendChild(btn);
      this._list.appendChild(li);
    }
  }
}

const LAB_TITLES: Record<string, string> = {
  '00_tour.ipynb': '导览 Tour',
  '01_data.ipynb': '书生·万卷 Data',
  '02_pretrain.ipynb': 'InternLM-Train Pretrain',
  '03_finetune.ipynb': 'XTuner Fine-tune',
  '04_preference.ipynb': 'XTuner DPO Preference',
  '05_deploy.ipynb': 'LMDeploy Deploy',
  '06_eval.ipynb': 'OpenCompass Evaluate',
  '07_agent.ipynb': 'Lagent Agent',
  '08_rag.ipynb': '茴香豆 RAG'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'puyu-lab-chain:plugin',
  description: '书生·浦语 Chain sidebar and lab launcher cards for puyu-lab',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILauncher],
  activate: (app: JupyterFrontEnd, shell: ILabShell, launcher: ILauncher | null) => {
    const open = (path: string) => {
      void app.commands.execute('docmanager:open', { path });
    };
    app.commands.addCommand('puyu-lab:open-lab', {
      label: args => String(args.label || args.path || 'Open lab'),
      caption: args => `打开实验 Open ${String(args.path || '')}`,
      icon: chainIcon,
      execute: args => open(String(args.path))
    });
    const sidebar = new ChainSidebar(open);
    shell.add(sidebar, 'left', { rank: 200 });
    sidebar.start();
    app.commands.addCommand('puyu-lab:refresh-chain', {
      label: '刷新全链路 Refresh the chain',
      execute: () => sidebar.refresh(true)
    });
    if (launcher) {
      void fetchChain()
        .then(state => {
          const labs = [
            ...(state.tour_path ? [state.tour_path] : []),
            ...state.stages.map(s => s.lab_path).filter((p): p is string => !!p)
          ];
          labs.forEach((path, rank) => {
            const name = path.split('/').pop() || path;
            launcher.add({
              command: 'puyu-lab:open-lab',
              args: { path, label: LAB_TITLES[name] || name },
              category: '书生·浦语 Labs',
              rank
            });
          });
        })
        .catch(e => console.warn('puyu-lab-chain: no launcher cards:', e));
    }
    console.log('puyu-lab-chain: activated');
  }
};

export default plugin;
