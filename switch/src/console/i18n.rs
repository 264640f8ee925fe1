//! The console's two languages: Simplified Chinese (zh-CN, the default: the operators are in
//! China) and English. The choice comes from `?lang=` (which also sets the cookie) or the
//! `console_lang` cookie; nothing else (not `Accept-Language`: a counter's shared browser
//! should show what the counter chose).
//!
//! One table of every string the pages show, looked up by key; a key missing from it shows
//! as itself, which a test of the table catches.

use axum::http::HeaderMap;

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 简体中文.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// From `?lang=` if given, else the cookie, else Chinese.
    pub fn of(headers: &HeaderMap, query: Option<&str>) -> Self {
        query
            .and_then(Self::parse)
            .or_else(|| super::cookie(headers, super::LANG_COOKIE).and_then(|v| Self::parse(&v)))
            .unwrap_or_default()
    }

    /// `zh`/`zh-CN` or `en`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// The strings of one language (what templates call `tr.t("key")` on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tr(pub Lang);

impl Tr {
    /// The string of `key`.
    pub fn t(&self, key: &str) -> &'static str {
        STRINGS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or("?", |(_, zh, en)| match self.0 {
                Lang::Zh => zh,
                Lang::En => en,
            })
    }

    /// The name of a card action (`op.<route name>`).
    pub fn op(&self, name: &str) -> &'static str {
        self.t(&format!("op.{name}"))
    }

    /// The name of a stored code (`<prefix>.<code>`: a transaction or leg kind, a card's
    /// life-cycle state), or the code itself when the table has none.
    pub fn name<'a>(&self, prefix: &str, code: &'a str) -> std::borrow::Cow<'a, str> {
        let key = format!("{prefix}.{code}");
        match STRINGS.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => std::borrow::Cow::Borrowed(if self.is_en() { en } else { zh }),
            None => std::borrow::Cow::Borrowed(code),
        }
    }

    /// The language code (`zh-CN`, `en`).
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// Whether the page is in English.
    pub fn is_en(&self) -> bool {
        self.0 == Lang::En
    }
}

/// (key, zh-CN, en).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("app.title", "社保卡交换平台 操作台", "Social-security card switch console"),
    ("nav.dashboard", "实时监控", "Dashboard"),
    ("nav.transactions", "交易查询", "Transactions"),
    ("nav.cards", "持卡人与卡片", "Cardholders and cards"),
    ("nav.batches", "申请批次", "Application batches"),
    ("nav.audit", "审计日志", "Audit log"),
    ("nav.settlement", "清算结算", "Settlement"),
    ("settlement.title", "清算结算", "Settlement"),
    ("settlement.open_window", "当前窗口", "Open window"),
    ("settlement.windows", "结算窗口", "Settlement windows"),
    ("settlement.window", "窗口", "Window"),
    ("settlement.institution", "机构", "Institution"),
    ("settlement.debits", "借方（元）", "Debits (CNY)"),
    ("settlement.credits", "贷方（元）", "Credits (CNY)"),
    ("settlement.net", "净额（元）", "Net (CNY)"),
    ("settlement.state", "状态", "State"),
    ("settlement.opened", "开始", "Opened"),
    ("settlement.closed", "结束", "Closed"),
    ("settlement.close", "关闭当前窗口", "Close the open window"),
    ("settlement.close_title", "关闭结算窗口", "Close the settlement window"),
    ("settlement.close_text", "关闭后将冻结本窗口、计算多边净额并生成对账文件。窗口", "Closing freezes the window, computes the multilateral net settlement and makes the statements. Window"),
    ("settlement.closed_notice", "已关闭窗口", "Closed window"),
    ("settlement.instructions", "结算指令", "Settlement instructions"),
    ("settlement.payer", "付款方", "Payer"),
    ("settlement.payee", "收款方", "Payee"),
    ("settlement.amount", "金额（元）", "Amount (CNY)"),
    ("settlement.statements", "对账单", "Statements"),
    ("nav.users", "用户管理", "Users"),
    ("nav.password", "修改密码", "Change password"),
    ("nav.logout", "退出登录", "Log out"),
    ("nav.main", "主导航", "Main navigation"),
    ("nav.skip", "跳到正文", "Skip to content"),
    ("lang.switch", "English", "中文"),
    ("lang.label", "语言", "Language"),
    ("login.title", "登录", "Log in"),
    ("login.username", "用户名", "Username"),
    ("login.password", "密码", "Password"),
    ("login.totp", "动态验证码（6 位）", "Authenticator code (6 digits)"),
    ("login.submit", "登录", "Log in"),
    ("login.failed", "登录失败：用户名、密码或验证码错误，或账户已锁定。", "Login failed: the username, password or code is wrong, or the user is locked."),
    ("login.logged_out", "您已退出登录。", "You are logged out."),
    ("password.title", "修改密码", "Change password"),
    ("password.current", "当前密码", "Current password"),
    ("password.new", "新密码", "New password"),
    ("password.submit", "修改", "Change"),
    ("password.done", "密码已修改，请重新登录。", "Password changed; log in again."),
    ("refused.title", "无权访问", "Not allowed"),
    ("refused.text", "您的角色或机构无权执行此操作。", "Your role or institution may not do this."),
    ("common.search", "查询", "Search"),
    ("common.none", "没有记录。", "Nothing found."),
    ("common.error", "错误", "Error"),
    ("common.back", "返回", "Back"),
    ("common.next", "下一页", "Next page"),
    ("common.confirm", "确认", "Confirm"),
    ("common.cancel", "取消", "Cancel"),
    ("common.reason", "原因（必填）", "Reason (required)"),
    ("common.yes", "是", "yes"),
    ("common.no", "否", "no"),
    ("common.signed_in_as", "当前用户", "Signed in as"),
    ("common.times_cst", "时间均为北京时间（UTC+8）", "Times are China Standard Time (UTC+8)"),
    ("txn.title", "交易查询", "Transaction search"),
    ("txn.rrn", "检索参考号（RRN）", "Retrieval reference number (RRN)"),
    ("txn.terminal", "终端号", "Terminal ID"),
    ("txn.from", "起始日期", "From date"),
    ("txn.to", "截止日期", "To date"),
    ("txn.pan_last4", "卡号后四位", "Card number, last 4 digits"),
    ("txn.response_code", "应答码", "Response code"),
    ("txn.time", "时间", "Time"),
    ("txn.kind", "类型", "Kind"),
    ("txn.pan", "卡号", "Card"),
    ("txn.amount", "金额（元）", "Amount (CNY)"),
    ("txn.acquirer", "受理机构", "Acquirer"),
    ("txn.issuer", "发卡行", "Issuer"),
    ("txn.result", "结果", "Result"),
    ("txn.approved", "批准", "Approved"),
    ("txn.declined", "拒绝", "Declined"),
    ("txn.detail", "交易详情", "Transaction detail"),
    ("txn.legs", "资金分摊", "Bill split"),
    ("txn.leg", "分项", "Leg"),
    ("txn.institution", "机构", "Institution"),
    ("txn.arqc", "ARQC/ARPC 校验", "ARQC/ARPC check"),
    ("txn.arqc_ok", "通过（已返回 ARPC）", "passed (ARPC returned)"),
    ("txn.arqc_failed", "失败", "failed"),
    ("txn.arqc_not_reached", "未进行（此前已拒绝）", "not reached (declined before)"),
    ("txn.arqc_blocked", "卡片检查拒绝；真实 ARQC 获 ARPC 及应用锁定脚本", "declined at the card check; a genuine ARQC gets its ARPC and an APPLICATION BLOCK script"),
    ("txn.reversal", "冲正/通知", "Reversal and advice"),
    ("txn.reversed_by", "已被冲正", "Reversed by"),
    ("txn.reverses", "冲正原交易", "Reverses"),
    ("txn.not_reversed", "未冲正", "not reversed"),
    ("txn.settlement_event", "清算事件", "Settlement event"),
    ("txn.stan", "流水号", "STAN"),
    ("txn.invalid", "查询条件有误", "The search is not valid"),
    ("card.title", "持卡人与卡片", "Cardholders and cards"),
    ("card.citizen_id", "公民身份号码（18 位）", "Citizen ID (18 characters)"),
    ("card.pan_last4", "卡号后四位", "Card number, last 4 digits"),
    ("card.pan", "卡号", "Card number"),
    ("card.issuer", "发卡行", "Bank"),
    ("card.expiry", "有效期（年月）", "Expiry (YYMM)"),
    ("card.lifecycle", "状态", "State"),
    ("card.version", "版本", "Version"),
    ("card.pin_tries", "PIN 错误次数", "Wrong PIN tries"),
    ("card.detail", "卡片详情", "Card detail"),
    ("card.history", "历史记录", "History"),
    ("card.actions", "操作", "Actions"),
    ("card.replaced_by", "已换发新卡", "Replaced by"),
    ("card.pin_block", "PIN 密文块（柜台密码键盘，十六进制）", "PIN block from the counter's PIN pad (hex)"),
    ("card.confirm_title", "确认卡片操作", "Confirm card operation"),
    ("card.confirm_text", "请确认对以下卡片执行此操作：", "Confirm this operation on the card:"),
    ("card.done", "操作已完成。", "Done."),
    ("card.search_hint", "按公民身份号码或卡号后四位查询。", "Search by citizen ID or the card number's last 4 digits."),
    ("op.hand-over", "交付持卡人", "Hand over"),
    ("op.activate", "激活", "Activate"),
    ("op.report-lost", "挂失", "Report lost"),
    ("op.report-stolen", "报告被盗", "Report stolen"),
    ("op.suspend", "暂停使用", "Suspend"),
    ("op.lift-suspension", "解挂（解除挂失/暂停）", "Lift loss report or suspension"),
    ("op.unblock", "解锁", "Unblock"),
    ("op.close", "注销", "Close"),
    ("op.replace", "补换卡", "Replace"),
    ("op.pin-reset", "重置 PIN", "Reset PIN"),
    ("op.issue", "制卡", "Card issued"),
    ("batch.title", "申请批次", "Application batches"),
    ("batch.upload", "上传申请批次（CSV）", "Upload an application batch (CSV)"),
    ("batch.id", "批次号", "Batch ID"),
    ("batch.file", "CSV 文件", "CSV file"),
    ("batch.submit", "上传", "Upload"),
    ("batch.job", "导入任务", "Import job"),
    ("batch.progress", "进度", "Progress"),
    ("batch.state", "状态", "State"),
    ("batch.rows", "行数", "Rows"),
    ("batch.created", "新建", "Created"),
    ("batch.duplicate", "重复", "Duplicates"),
    ("batch.rejected", "拒绝", "Rejected"),
    ("batch.errors", "逐行错误", "Errors by row"),
    ("batch.download_errors", "下载错误报告（CSV）", "Download the error report (CSV)"),
    ("batch.row", "行", "Row"),
    ("batch.field", "字段", "Field"),
    ("batch.applications", "本批次申请", "Applications of the batch"),
    ("batch.name", "姓名", "Name"),
    ("batch.region", "参保地区", "Region"),
    ("batch.status", "状态", "Status"),
    ("batch.issue", "制卡", "Issue card"),
    ("batch.issued", "已制卡", "Card issued"),
    ("batch.running", "导入进行中，页面会自动刷新。", "Import running; this page refreshes itself."),
    ("batch.find", "查看批次", "Open a batch"),
    ("dash.title", "实时监控", "Live dashboard"),
    ("dash.tps", "每秒交易数", "Transactions per second"),
    ("dash.total", "累计应答", "Responses so far"),
    ("dash.codes", "应答码分布", "Response codes"),
    ("dash.latency", "处理时延", "Latency"),
    ("dash.banks", "银行链路", "Bank links"),
    ("dash.bank", "银行", "Bank"),
    ("dash.link", "链路", "Link"),
    ("dash.up", "在线", "up"),
    ("dash.down", "离线", "down"),
    ("dash.saf", "存储转发积压", "Store-and-forward backlog"),
    ("dash.pending", "待确认", "Pending"),
    ("dash.held", "暂缓", "Held"),
    ("dash.live", "实时更新中", "Live"),
    ("dash.static", "静态快照（启用 JavaScript 可实时更新）", "Snapshot (enable JavaScript for live figures)"),
    ("dash.tps_chart", "最近 60 秒每秒交易数", "Transactions per second, last 60 s"),
    ("kind.purchase", "消费", "Purchase"),
    ("kind.preauthorization", "预授权", "Pre-authorization"),
    ("kind.completion", "预授权完成", "Completion"),
    ("kind.hold_release", "预授权释放", "Hold release"),
    ("kind.balance_inquiry", "余额查询", "Balance inquiry"),
    ("kind.refund", "退货", "Refund"),
    ("kind.benefit_credit", "待遇发放", "Benefit credit"),
    ("kind.medical_bill_split", "医疗费用结算", "Hospital bill"),
    ("kind.reversal", "冲正", "Reversal"),
    ("leg.pooled_fund", "统筹基金", "Pooled fund"),
    ("leg.personal_account", "个人账户", "Personal account"),
    ("leg.bank", "银行账户", "Bank account"),
    ("leg.social_security_fund", "社保基金", "Social-security fund"),
    ("leg.fee", "手续费", "Fee"),
    ("audit.title", "审计日志", "Audit log"),
    ("audit.seq", "序号", "No."),
    ("audit.at", "时间", "Time"),
    ("audit.actor", "操作人", "Actor"),
    ("audit.action", "动作", "Action"),
    ("audit.subject", "对象", "Subject"),
    ("audit.source", "来源地址", "Source"),
    ("audit.reason", "原因", "Reason"),
    ("users.title", "用户管理", "Users"),
    ("users.username", "用户名", "Username"),
    ("users.institution", "机构", "Institution"),
    ("users.roles", "角色", "Roles"),
    ("users.create", "新建用户", "New user"),
    ("users.created", "用户已创建。请将初始密码和 TOTP 密钥安全交给本人（只显示这一次）：", "User created. Hand the first password and TOTP secret to the person securely (shown this once):"),
    ("users.propose", "提议角色变更", "Propose a role change"),
    ("users.role_ids", "角色（逗号分隔）", "Roles (comma-separated)"),
    ("users.proposed", "已提议，需另一位管理员批准。", "Proposed; another administrator must approve it."),
    ("users.approve", "批准变更", "Approve change"),
    ("users.change_id", "变更编号", "Change ID"),
    ("users.approved", "已批准。", "Approved."),
    ("users.locked", "锁定至", "Locked until"),
    ("nav.role_changes", "角色变更审批", "Role-change approvals"),
    ("rc.title", "待审批的角色变更", "Open role-change proposals"),
    ("rc.hint", "角色变更须由提议人和被变更用户以外的另一位管理员批准或驳回（四眼原则）。", "A role change is approved or rejected by an administrator other than its proposer and the user it changes (four eyes)."),
    ("rc.user", "用户", "User"),
    ("rc.roles", "变更后的角色", "Roles after the change"),
    ("rc.reason", "提议原因", "Reason given"),
    ("rc.proposed_by", "提议人", "Proposed by"),
    ("rc.proposed_at", "提议时间", "Proposed at"),
    ("rc.approve", "批准", "Approve"),
    ("rc.reject", "驳回", "Reject"),
    ("rc.confirm_approve", "确认批准角色变更", "Confirm the approval"),
    ("rc.confirm_reject", "确认驳回角色变更", "Confirm the rejection"),
    ("rc.confirm_text", "请确认对以下角色变更的决定：", "Confirm your decision on this role change:"),
    ("rc.reject_reason", "驳回原因（必填）", "Why it is rejected (required)"),
    ("rc.approved", "已批准，用户的角色已变更。", "Approved; the user's roles have changed."),
    ("rc.rejected", "已驳回，用户的角色未变。", "Rejected; the user's roles stay."),
    ("rc.yours", "您提议的变更，须由另一位管理员处理", "your proposal: another administrator decides"),
    ("wstate.open", "进行中", "open"),
    ("wstate.closed", "已关闭", "closed"),
    ("dash.positions", "各机构净额头寸", "Net positions"),
    ("dash.positions_chart", "各机构净额头寸（左为应付，右为应收）", "Net positions (payers left, payees right)"),
    ("dash.positions_as_of", "清算数据时间：", "Clearing's figures as of"),
    ("dash.net_sum", "净额合计", "Sum of the nets"),
    ("dash.no_clearing", "本节点未连接清算服务（未配置 [clearing_api]），无法显示净额头寸。", "This node has no clearing source ([clearing_api] is not configured): no net positions to show."),
    ("dash.no_positions", "当前窗口尚无头寸。", "No positions in the open window yet."),
    ("dash.lag", "清算延迟", "Clearing lag"),
    ("dash.lag_unapplied", "笔结算事件尚未记入清算账簿", "settlement events clearing has not applied yet"),
    ("dash.lag_unrelayed", "笔结算事件尚未由中继送达清算消息总线", "settlement events the relay has not handed to clearing's bus yet"),
    ("dash.lag_oldest", "最早一笔已等待", "The oldest has waited"),
    ("dash.lag_chart", "最近 60 秒待送清算的事件数", "Events waiting for clearing, last 60 s"),
    ("card.transactions", "交易记录", "Transactions"),
    ("card.events", "卡片状态变更", "Life-cycle events"),
    ("problem.unauthenticated", "请先登录。", "Log in first."),
    ("problem.forbidden", "您的角色没有此操作所需的权限。", "Your roles lack the permission this needs."),
    ("problem.not-found", "没有找到该记录（或它不属于您的机构）。", "Not found (or not your institution's)."),
    ("problem.invalid-request", "请求内容有误，请检查填写的内容。", "The request is not valid; check what you entered."),
    ("problem.invalid-input", "输入内容有误，请检查填写的内容。", "The input is not valid; check what you entered."),
    ("problem.conflict", "当前状态不允许此操作（可能已由他人处理）。", "Not allowed in the current state (someone may have done it already)."),
    ("problem.unavailable", "数据库暂时无法访问，请稍后重试。", "The store is unavailable; try again."),
    ("problem.four-eyes", "四眼原则：角色变更须由提议人和被变更用户以外的另一位管理员批准或驳回。", "Four eyes: another administrator than the proposer and the user changed decides a role change."),
    ("problem.csrf", "表单已失效，请刷新页面后重试。", "The form has expired; reload the page and try again."),
    ("problem.idempotency-key-reused", "此表单已用不同内容提交过，请刷新页面后重试。", "This form was sent with other content; reload the page and try again."),
    ("problem.precondition-failed", "卡片在您查看后已被他人修改，请重新打开卡片页面。", "The card changed since you read it; open it again."),
    ("problem.precondition-required", "缺少版本信息，请重新打开页面。", "The version is missing; open the page again."),
    ("problem.clearing-not-configured", "本节点未配置清算服务（[clearing_api]），无法查看结算。", "This node has no clearing source ([clearing_api]): settlement is not reachable from it."),
    ("problem.clearing-unavailable", "清算服务暂时没有应答，请稍后重试。", "Clearing did not answer; try again."),
    ("problem.cms-not-configured", "本节点未配置制卡管理。", "This node has no card management."),
    ("problem.hsm", "加密机暂时不可用，请稍后重试。", "The HSM is unavailable; try again."),
    ("problem.login-failed", "登录失败：用户名、密码或验证码错误，或账户已锁定。", "Login failed."),
    ("problem.wrong-password", "当前密码不正确。", "The current password is wrong."),
    ("problem.no-session", "会话已结束，请重新登录。", "The session has ended; log in again."),
    ("problem.other", "请求未成功", "The request failed"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_once_in_the_table_and_both_languages_say_something() {
        for (i, (k, zh, en)) in STRINGS.iter().enumerate() {
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
            assert!(
                !STRINGS[..i].iter().any(|(other, _, _)| other == k),
                "{k} twice"
            );
        }
        assert_eq!(Tr(Lang::Zh).t("nav.logout"), "退出登录");
        assert_eq!(Tr(Lang::En).t("nav.logout"), "Log out");
        assert_eq!(Tr(Lang::En).t("no.such.key"), "?");
    }

    #[test]
    fn the_query_beats_the_cookie_and_chinese_is_the_default() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h, None), Lang::Zh);
        h.insert(
            axum::http::header::COOKIE,
            "a=b; console_lang=en".parse().unwrap(),
        );
        assert_eq!(Lang::of(&h, None), Lang::En);
        assert_eq!(Lang::of(&h, Some("zh")), Lang::Zh);
        assert_eq!(Lang::of(&h, Some("fr")), Lang::En);
    }
}
