// 书生·浦语 Chain: the puyu-lab chain in a JupyterLab sidebar, and launcher cards for its labs.
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { ServerConnection } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ROUTE = 'puyu-lab/api/chain';
const POLL_MS = 2000;

interface Artifact {
  name: string;
  status: string;
  created: string;
  figures: Record<string, number | string | boolean>;
  // each figure's label in both languages (puyu_lab.i18n.FIGURES; the key itself where it has none)
  figure_labels?: Record<string, { zh: string; en: string }>;
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

// The sidebar speaks JupyterLab's own display language (`puyu-lab lab` sets it from PUYU_LAB_LANG / the OS
// locale; Settings → Language changes it): Chinese under a zh locale, English otherwise. One table, both languages.
type Lang = 'zh' | 'en';

const WORDS = {
  present: { zh: '已就绪', en: 'present' },
  stale: { zh: '已过期', en: 'stale' },
  missing: { zh: '缺失', en: 'missing' },
  chain: { zh: '书生·浦语 全链路', en: '书生·浦语 Chain' },
  refresh: { zh: '刷新', en: 'Refresh' },
  refreshChain: { zh: '刷新全链路', en: 'Refresh the chain' },
  workspace: { zh: '工作区', en: 'Workspace' },
  checks: { zh: '自检', en: 'checks' },
  checksTip: {
    zh: '`puyu-lab check` 列出每项自检、它测得的数字和提示',
    en: '`puyu-lab check` shows each check, its figure and its hint'
  },
  needs: { zh: '需要', en: 'needs' },
  open: { zh: '打开实验', en: 'Open' },
  labs: { zh: '书生·浦语 实验', en: '书生·浦语 Labs' }
};

// each stage's role, in Chinese (the server sends the tool's name and the English role)
const ROLE_ZH: Record<string, string> = {
  data: '数据',
  pretrain: '预训练',
  finetune: '微调',
  preference: '偏好对齐',
  rl: '强化学习',
  deploy: '部署与量化',
  eval: '评测',
  agent: '智能体',
  rag: '检索增强'
};

export function langOf(languageCode: string | undefined): Lang {
  return (languageCode || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

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

  constructor(
    private _open: (path: string) => void,
    private _lang: Lang = 'en'
  ) {
    super();
    this.id = 'puyu-lab-chain';
    this.addClass('puyu-chain');
    this.node.lang = _lang === 'zh' ? 'zh-CN' : 'en';
    this.title.icon = chainIcon;
    this.title.caption = this._t('chain');
    const head = el('div', 'puyu-chain-head');
    head.appendChild(el('h2', 'puyu-chain-title', this._t('chain')));
    const refresh = el('button', 'jp-Button puyu-chain-refresh', '↻');
    refresh.title = this._t('refresh');
    refresh.onclick = () => void this.refresh(true);
    head.appendChild(refresh);
    this.node.appendChild(head);
    this._info = el('div', 'puyu-chain-info', '…');
    this.node.appendChild(this._info);
    this._list = el('ol', 'puyu-chain-stages');
    this.node.appendChild(this._list);
  }

  private _t(key: keyof typeof WORDS): string {
    return WORDS[key][this._lang];
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
    this._info.textContent = `${this._t('workspace')}: ${state.workspace}`;
    this._list.replaceChildren();
    for (const st of state.stages) {
      const li = el('li', `puyu-stage puyu-${st.status}`);
      li.dataset.stage = st.key;
      li.dataset.status = st.status;
      const top = el('div', 'puyu-stage-top');
      top.appendChild(el('span', 'puyu-stage-name', st.zh)); // the InternLM tool's own name
      top.appendChild(el('span', 'puyu-stage-en', this._lang === 'zh' ? ROLE_ZH[st.key] || st.en : st.en));
      const status = st.status in WORDS ? this._t(st.status) : st.status;
      top.appendChild(el('span', `puyu-badge puyu-badge-${st.status}`, status));
      li.appendChild(top);
      if (st.checks === null) {
        li.appendChild(el('div', 'puyu-checks puyu-checks-pending', `${this._t('checks')} …`));
      } else if (st.checks && st.checks.total > 0) {
        const { passed, total } = st.checks;
        const cls = passed === total ? 'puyu-checks-all' : passed > 0 ? 'puyu-checks-some' : 'puyu-checks-none';
        const chk = el('div', `puyu-checks ${cls}`, `${this._t('checks')} ${passed}/${total}`);
        chk.dataset.passed = String(passed);
        chk.dataset.total = String(total);
        chk.title = this._t('checksTip');
        li.appendChild(chk);
      }
      for (const a of st.artifacts) {
        const row = el('div', 'puyu-artifact');
        row.dataset.artifact = a.name;
        row.appendChild(el('code', undefined, a.name));
        const figs = Object.entries(a.figures || {});
        if (figs.length) {
          const box = el('span', 'puyu-figures');
          figs.forEach(([k, v], i) => {
            const label = a.figure_labels?.[k]?.[this._lang] || k;
            const fig = el('span', 'puyu-figure', `${label}=${fmt(v)}`);
            fig.dataset.key = k;
            fig.title = k; // the metric's own key, as the manifest and the code name it
            box.append(...(i ? [', ', fig] : [fig]));
          });
          row.appendChild(box);
        }
        if (a.status === 'stale') {
          row.appendChild(el('span', 'puyu-badge puyu-badge-stale', this._t('stale')));
        }
        li.appendChild(row);
      }
      if (!st.artifacts.length && st.needs.length) {
        li.appendChild(el('div', 'puyu-needs', `${this._t('needs')}: ${st.needs.join(', ')}`));
      }
      const btn = el('button', 'jp-Button puyu-open-lab', `${this._t('open')} ${st.lab}`) as HTMLButtonElement;
      btn.dataset.lab = st.lab_path || '';
      btn.disabled = !st.lab_path;
      btn.onclick = () => st.lab_path && this._open(st.lab_path);
      li.appendChild(btn);
      this._list.appendChild(li);
    }
  }
}

const LAB_TITLES: Record<string, { zh: string; en: string }> = {
  '00_tour.ipynb': { zh: '导览', en: 'Tour' },
  '01_data.ipynb': { zh: '书生·万卷 数据', en: '书生·万卷 Data' },
  '02_pretrain.ipynb': { zh: 'InternLM-Train 预训练', en: 'InternLM-Train Pretrain' },
  '03_finetune.ipynb': { zh: 'XTuner 微调', en: 'XTuner Fine-tune' },
  '04_preference.ipynb': { zh: 'XTuner DPO 偏好对齐', en: 'XTuner DPO Preference' },
  '05_rl.ipynb': { zh: 'GRPO 强化学习', en: 'GRPO RL' },
  '06_deploy.ipynb': { zh: 'LMDeploy 部署与量化', en: 'LMDeploy Deploy' },
  '07_eval.ipynb': { zh: 'OpenCompass 评测', en: 'OpenCompass Evaluate' },
  '08_agent.ipynb': { zh: 'Lagent 智能体', en: 'Lagent Agent' },
  '09_rag.ipynb': { zh: '茴香豆 检索增强', en: '茴香豆 RAG' }
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'puyu-lab-chain:plugin',
  description: '书生·浦语 Chain sidebar and lab launcher cards for puyu-lab',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILauncher, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    launcher: ILauncher | null,
    translator: ITranslator | null
  ) => {
    const lang = langOf(translator?.languageCode);
    const open = (path: string) => {
      void app.commands.execute('docmanager:open', { path });
    };
    app.commands.addCommand('puyu-lab:open-lab', {
      label: args => String(args.label || args.path || 'Open lab'),
      caption: args => `${WORDS.open[lang]} ${String(args.path || '')}`,
      icon: chainIcon,
      execute: args => open(String(args.path))
    });
    const sidebar = new ChainSidebar(open, lang);
    shell.add(sidebar, 'left', { rank: 200 });
    sidebar.start();
    app.commands.addCommand('puyu-lab:refresh-chain', {
      label: WORDS.refreshChain[lang],
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
              args: { path, label: LAB_TITLES[name]?.[lang] || name },
              category: WORDS.labs[lang],
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
