// Labels in Chinese (the default) and English; the toggle in the header
// switches and remembers the choice in this browser.
const ZH = {
  title: "控制台", cancel: "取消", confirm: "确认", failed: "失败", refreshed: "已刷新",
  "page.networks": "专网", "page.cases": "办件", "page.dead-letters": "死信",
  "page.deadlines": "时限", "page.audit": "审计", "page.report": "二次录入",
  "role.operator": "运维", "role.auditor": "审计员",
  network: "专网", health: "健康", breaker: "熔断器", alert: "告警", queue: "队列",
  oldest: "最久待发(秒)", delivered_1h: "近1小时成功", failed_1h: "近1小时失败",
  adapter: "适配器", action: "操作", no_adapter: "适配器未加载", refused: "已拒绝",
  swaps: "热替换记录", read_only: "只读", confirm_resume: "解除告警并恢复队列：", resume: "恢复",
  ok: "正常", degraded: "降级", down: "停用", closed: "闭合", open: "断开", half_open: "半开",
  green: "绿灯", yellow: "黄灯", red: "红灯", done: "办结",
  open_cases: "在办件", truncated: "仅统计了部分在办件", none: "无", red_cases: "红灯办件",
  item: "事项", bureau: "审批局", case_number: "办件编号", light: "时限灯", deadline: "承诺时限",
  pending: "待发", verify: "待核实", in_flight: "发送中", delivered: "已送达", dead: "死信",
  blocked: "阻塞", waiting: "等待上游", retrying: "重试中", verifying: "核实中",
  any: "全部", state: "状态", since: "起", until: "止", search: "查询", no_cases: "没有符合条件的办件",
  networks: "各专网", updated: "更新时间", loading: "加载中…", ministry_case_number: "部门办件号",
  stage: "环节", result: "结果", timeline: "时间线",
  intake: "受理", change: "变更", attempt: "推送", handoff: "链式传递", notice: "通知", stage_kind: "环节",
  filter: "筛选", needs_replay: "需要 replay 权限", replay_selected: "重放所选",
  select: "选择", reason: "原因", dead_at: "死信时间", attempts: "尝试记录",
  select_first: "请先勾选死信", no_dead_letters: "没有死信", confirm_replay: "确认重放：", replayed: "已重放",
  auditors_only: "审计日志仅限审计员查看。", audit_query: "查询与导出", chain: "哈希链",
  intact: "完整", broken: "断裂", records: "记录数", checkpoints: "签名检查点",
  last_checkpoint: "最后检查点", after_checkpoint: "检查点后记录", hash: "哈希算法",
  last_checkpoint_at: "最后检查点时间", kind: "类型", case: "办件", principal: "主体",
  export: "导出 JSONL", first_n: "仅显示前", seq: "序号", at: "时间", detail: "详情",
  period: "周期", day: "按日", month: "按月", total: "合计", show: "显示", cases: "办件数",
  keyed_into_networks: "各专网需录入字段", keyed_once: "统一录入字段", keyings_saved: "节省录入",
  results_flowed_back: "回流结果", per_item: "各事项字段", chart: "节省录入与回流结果",
  passed_along: "链式传递字段", saved_per_case: "每件节省",
  permanent: "永久失败", retryable: "可重试", ambiguous: "不确定", not_found: "未找到", found: "已找到",
};

const EN = {
  title: "Console", cancel: "Cancel", confirm: "Confirm", failed: "Failed", refreshed: "Refreshed",
  "page.networks": "Networks", "page.cases": "Cases", "page.dead-letters": "Dead letters",
  "page.deadlines": "Deadlines", "page.audit": "Audit", "page.report": "Double entry",
  "role.operator": "operator", "role.auditor": "auditor",
  network: "Network", health: "Health", breaker: "Breaker", alert: "Alert", queue: "Queue",
  oldest: "Oldest pending (s)", delivered_1h: "Delivered (1 h)", failed_1h: "Failed (1 h)",
  adapter: "Adapter", action: "Action", no_adapter: "adapter not loaded", refused: "refused",
  swaps: "Hot swaps", read_only: "read-only", confirm_resume: "Lift the alert and resume the queue of", resume: "Resume",
  ok: "ok", degraded: "degraded", down: "down", closed: "closed", open: "open", half_open: "half-open",
  green: "green", yellow: "yellow", red: "red", done: "done",
  open_cases: "Open cases", truncated: "Only part of the open cases were counted", none: "None", red_cases: "Red cases",
  item: "Item", bureau: "Bureau", case_number: "Case number", light: "Light", deadline: "Deadline",
  pending: "pending", verify: "verify", in_flight: "in flight", delivered: "delivered", dead: "dead",
  blocked: "blocked", waiting: "waiting", retrying: "retrying", verifying: "verifying",
  any: "any", state: "State", since: "Since", until: "Until", search: "Search", no_cases: "No matching cases",
  networks: "Networks", updated: "Updated", loading: "Loading…", ministry_case_number: "Ministry case number",
  stage: "Stage", result: "Result", timeline: "Timeline",
  intake: "intake", change: "change", attempt: "attempt", handoff: "hand-off", notice: "notice", stage_kind: "stage",
  filter: "Filter", needs_replay: "needs the replay grant", replay_selected: "Replay selected",
  select: "select", reason: "Reason", dead_at: "Dead since", attempts: "Attempts",
  select_first: "Select dead letters first", no_dead_letters: "No dead letters", confirm_replay: "Replay", replayed: "Replayed",
  auditors_only: "The audit trail is for auditors.", audit_query: "Query and export", chain: "Hash chain",
  intact: "intact", broken: "broken", records: "Records", checkpoints: "Signed checkpoints",
  last_checkpoint: "Last checkpoint", after_checkpoint: "Records after it", hash: "Hash",
  last_checkpoint_at: "Last checkpoint at", kind: "Kind", case: "Case", principal: "Principal",
  export: "Export JSONL", first_n: "Showing the first", seq: "Seq", at: "At", detail: "Detail",
  period: "Period", day: "day", month: "month", total: "total", show: "Show", cases: "Cases",
  keyed_into_networks: "Fields keyed into networks", keyed_once: "Keyed once", keyings_saved: "Keyings saved",
  results_flowed_back: "Results flowed back", per_item: "Fields per item", chart: "Keyings saved and results flowed back",
  passed_along: "Passed along", saved_per_case: "Saved per case",
  permanent: "permanent", retryable: "retryable", ambiguous: "ambiguous", not_found: "not found", found: "found",
};

const DICTS = { zh: ZH, en: EN };
let current = localStorage.getItem("yiwang.lang") === "en" ? "en" : "zh";

export function lang() {
  return current;
}

export function setLang(l) {
  current = l === "en" ? "en" : "zh";
  localStorage.setItem("yiwang.lang", current);
}

/** The label for a key in the current language (the key itself if none). */
export function t(key) {
  return DICTS[current][key] ?? EN[key] ?? key;
}

/** Relabel every element that names its label with `data-t`. */
export function translate(root) {
  for (const e of root.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
}
