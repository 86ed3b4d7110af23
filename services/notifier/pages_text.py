"""The words of the pages the notifier serves, Chinese first with English beside it: one catalogue,
key -> {"zh": ..., "en": ...}. A page asks `texts(lang)` for its words in one language."""
from __future__ import annotations

from contracts.vocabulary import RiskType

LANGUAGES = ("zh", "en")  # the first is the default

TEXT: dict[str, dict[str, str]] = {
    "declare.title": {"zh": "农户自主申报", "en": "Declare a difficulty"},
    "declare.intro": {"zh": "家里遇到困难、可能返贫致贫的，请在这里申报，村里会尽快联系您核实。",
                      "en": "If your household has met a difficulty that may push it into poverty, declare it "
                            "here; the village will call you to verify it."},
    "declare.loading": {"zh": "正在读取您家的信息…", "en": "Loading your household…"},
    "declare.load_failed": {"zh": "暂时无法读取您家的信息，请稍后再试。", "en": "Your household could not be loaded; "
                                                                        "please try again later."},
    "household.heading": {"zh": "申报户", "en": "Your household"},
    "household.head": {"zh": "户主", "en": "Head of household"},
    "household.village": {"zh": "所在村", "en": "Village"},
    "household.members": {"zh": "家庭人口", "en": "Members"},
    "form.risk_types": {"zh": "遇到的困难（可多选）", "en": "Difficulties (choose all that apply)"},
    "form.description": {"zh": "情况说明", "en": "What happened"},
    "form.description_hint": {"zh": "例如：家人生病住院，花费较大", "en": "e.g. a family member is in hospital"},
    "form.phone": {"zh": "联系电话", "en": "Phone number"},
    "form.submit": {"zh": "提交申报", "en": "Send"},
    "form.sending": {"zh": "正在提交…", "en": "Sending…"},
    "form.failed": {"zh": "提交没有成功，请检查后重试。", "en": "The declaration was not sent; check it and try again."},
    # Next to a field intake refused (its problem document's errors[].field); other fields show intake's message.
    "error.phone": {"zh": "请填写正确的电话号码（6到20位数字）", "en": "Enter a valid phone number (6 to 20 digits)"},
    "error.risk_types": {"zh": "请至少选择一项困难", "en": "Choose at least one difficulty"},
    "error.description": {"zh": "情况说明太长，请精简到2000字以内", "en": "The description is too long (2000 characters at most)"},
    "done.heading": {"zh": "申报已收到", "en": "Declaration received"},
    "done.number": {"zh": "申报编号", "en": "Declaration number"},
    "done.next": {"zh": "村里会在规定时间内入户核实，请保持电话畅通。", "en": "The village will visit to verify it; "
                                                                       "keep your phone at hand."},
    "invalid.title": {"zh": "链接无效或已过期", "en": "This link is not valid or has expired"},
    "invalid.body": {"zh": "这个申报链接无法使用。请向村两委干部或网格员索取新的政策明白卡（一户一码），扫描卡上的二维码再申报。",
                     "en": "This declaration link cannot be used. Ask your village cadre or grid worker for a new "
                           "policy leaflet and scan the QR code on it."},
    "invalid.not_household": {"zh": "这个链接不是农户申报用的二维码链接。", "en": "This link is not a household's "
                                                                            "declaration link."},
    # The staff console (工作台), /console.
    "console.title": {"zh": "防返贫工作台", "en": "Staff console"},
    "console.login_intro": {"zh": "请粘贴您的工作令牌登录。令牌只保存在本浏览器标签页中，关闭即清除。",
                            "en": "Paste your staff token to sign in. It is kept in this browser tab only."},
    "console.token": {"zh": "工作令牌", "en": "Staff token"},
    "console.login": {"zh": "登录", "en": "Sign in"},
    "console.logout": {"zh": "退出", "en": "Sign out"},
    "console.refused": {"zh": "这个令牌无效或未被接受，请向管理员索取新的令牌。",
                        "en": "This token is not valid or not accepted; ask for a new one."},
    "console.inbox": {"zh": "我的消息", "en": "Inbox"},
    "console.unread": {"zh": "未读", "en": "Unread"},
    "console.empty": {"zh": "暂无消息。", "en": "No notifications."},
    "console.loading": {"zh": "正在读取…", "en": "Loading…"},
    "console.load_failed": {"zh": "暂时无法读取，请稍后再试。", "en": "Could not load; please try again later."},
    "console.live": {"zh": "实时更新中", "en": "Live"},
    "console.reconnecting": {"zh": "连接中断，正在重连…", "en": "Connection lost, reconnecting…"},
    "console.new": {"zh": "未读", "en": "New"},
    "console.task": {"zh": "任务", "en": "Task"},
    "console.urgent": {"zh": "紧急", "en": "Urgent"},
    "console.due": {"zh": "办理期限", "en": "Due"},
    "console.back": {"zh": "返回消息列表", "en": "Back to the inbox"},
    "console.reference": {"zh": "事项", "en": "Reference"},
    "console.acknowledge": {"zh": "已受理", "en": "Acknowledge"},
    "console.acknowledged": {"zh": "已受理", "en": "Acknowledged"},
    "console.case": {"zh": "核查案件", "en": "Case"},
    "console.case_household": {"zh": "农户编号", "en": "Household"},
    "console.case_step": {"zh": "当前环节", "en": "Step"},
    "console.case_due": {"zh": "环节期限", "en": "Step due"},
    "console.case_status": {"zh": "状态", "en": "Status"},
    "console.plan": {"zh": "帮扶计划", "en": "Assistance plan"},
    "console.plan_helper": {"zh": "帮扶责任人", "en": "Helper"},
    "console.plan_measures": {"zh": "帮扶措施", "en": "Measures"},
    "console.plan_gaps": {"zh": "计划缺口", "en": "Gaps"},
    "console.plan_none": {"zh": "无", "en": "none"},
    "console.not_your_step": {"zh": "这个环节不由您的角色办理。", "en": "Your role does not take this step."},
    "console.submit": {"zh": "提交", "en": "Submit"},
    "console.sending": {"zh": "正在提交…", "en": "Sending…"},
    "console.failed": {"zh": "提交没有成功。", "en": "Not recorded."},
    "console.recorded": {"zh": "已记录。案件现在的环节：", "en": "Recorded. The case is now at: "},
    "console.recommendation": {"zh": "核查建议", "en": "Recommendation"},
    "console.yes": {"zh": "是", "en": "Yes"},
    "console.no": {"zh": "否", "en": "No"},
    "verify.income": {"zh": "家庭年人均纯收入（元）", "en": "Per-capita net income (yuan a year)"},
    "verify.rigid": {"zh": "年人均刚性支出（元）", "en": "Rigid expenditure per person (yuan a year)"},
    "verify.education_ok": {"zh": "义务教育有保障", "en": "Compulsory education guaranteed"},
    "verify.medical_ok": {"zh": "基本医疗有保障", "en": "Basic medical care guaranteed"},
    "verify.housing_safe": {"zh": "住房安全有保障", "en": "Housing safe"},
    "verify.water_safe": {"zh": "饮水安全有保障", "en": "Drinking water safe"},
    "verify.notes": {"zh": "核查情况说明", "en": "Notes"},
    "deliberate.decision": {"zh": "评议结果", "en": "Decision"},
    "deliberate.propose": {"zh": "同意纳入，进行公示", "en": "Propose (post the notice)"},
    "deliberate.not_propose": {"zh": "不同意纳入", "en": "Do not propose"},
    "deliberate.attendees": {"zh": "参会人数", "en": "Attendees"},
    "deliberate.minutes": {"zh": "评议记录", "en": "Minutes"},
    "township.decision": {"zh": "初审意见", "en": "Review"},
    "township.pass": {"zh": "通过，报县审定", "en": "Pass to the county"},
    "township.return": {"zh": "退回重新核查", "en": "Return for a new visit"},
    "township.comment": {"zh": "意见说明", "en": "Comment"},
    "county.decision": {"zh": "审定结果", "en": "Decision"},
    "county.approve": {"zh": "批准，纳入监测对象", "en": "Approve"},
    "county.reject": {"zh": "不予纳入", "en": "Reject"},
    "county.category": {"zh": "监测对象类别", "en": "Category"},
    "county.reason": {"zh": "理由", "en": "Reason"},
}

# The steps of screening's identification ladder and the categories of monitoring subjects, as the console shows them.
STEP_LABELS: dict[str, dict[str, str]] = {
    "verification_visit": {"zh": "入户核查", "en": "Verification visit"},
    "village_deliberation": {"zh": "村级评议", "en": "Village deliberation"},
    "public_notice": {"zh": "公示", "en": "Public notice"},
    "township_review": {"zh": "乡镇初审", "en": "Township review"},
    "county_decision": {"zh": "县级审定", "en": "County decision"},
    "closed": {"zh": "已结案", "en": "Closed"},
    # a case's status and outcome
    "open": {"zh": "办理中", "en": "Open"},
    "identified": {"zh": "已纳入监测", "en": "Identified"},
    "rejected": {"zh": "未纳入", "en": "Not identified"},
}
CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "unstable_formerly_poor": {"zh": "脱贫不稳定户", "en": "Formerly poor, unstable"},
    "marginal_at_risk": {"zh": "边缘易致贫户", "en": "Marginal, at risk"},
    "sudden_hardship": {"zh": "突发严重困难户", "en": "Sudden severe hardship"},
}

# 风险类型, as the monitoring system names them.
RISK_LABELS: dict[RiskType, dict[str, str]] = {
    RiskType.ILLNESS: {"zh": "因病", "en": "Illness"},
    RiskType.DISABILITY: {"zh": "因残", "en": "Disability"},
    RiskType.SCHOOLING: {"zh": "因学", "en": "Schooling costs"},
    RiskType.DISASTER: {"zh": "因自然灾害", "en": "Natural disaster"},
    RiskType.ACCIDENT: {"zh": "因意外事故", "en": "Accident"},
    RiskType.UNSTABLE_EMPLOYMENT: {"zh": "因务工就业不稳", "en": "Unstable work"},
    RiskType.BUSINESS_FAILURE: {"zh": "因产业项目失败", "en": "Farm or business failed"},
    RiskType.LACK_OF_LABOUR: {"zh": "缺劳动力", "en": "No one able to work"},
    RiskType.HOUSING: {"zh": "住房出现安全问题", "en": "Unsafe housing"},
    RiskType.WATER: {"zh": "饮水安全问题", "en": "Unsafe drinking water"},
    RiskType.INCOME_DROP: {"zh": "收入骤减", "en": "Income fell sharply"},
    RiskType.EXPENSE_SURGE: {"zh": "支出骤增", "en": "Expenses rose sharply"},
    RiskType.OTHER: {"zh": "其他", "en": "Other"},
}


def texts(lang: str) -> dict[str, str]:
    return {key: words[lang] for key, words in TEXT.items()}


def risk_labels(lang: str) -> dict[str, str]:
    return {risk.value: words[lang] for risk, words in RISK_LABELS.items()}


def console_labels(lang: str) -> dict[str, dict[str, str]]:
    """The console's words in one language: its texts, the ladder's steps and the subjects' categories."""
    return {"text": texts(lang), "steps": {k: v[lang] for k, v in STEP_LABELS.items()},
            "categories": {k: v[lang] for k, v in CATEGORY_LABELS.items()}}


def choose_language(asked: str | None, accept_language: str | None) -> str:
    """?lang= first, then the first of Accept-Language's languages (by weight) that a page speaks, else zh."""
    if asked in LANGUAGES:
        return asked
    weighted = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, position, tag.strip().lower().split("-")[0]))
    return next((lang for weight, _, lang in sorted(weighted) if lang in LANGUAGES and weight < 0), LANGUAGES[0])
