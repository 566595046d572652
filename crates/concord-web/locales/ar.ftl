# واجهة Concord على الويب: العربية. لا تُترجم تسميات TLP (معيار FIRST TLP 2.0).
language-name = العربية
language = اللغة
language-apply = تطبيق
skip-to-content = انتقل إلى المحتوى
nav-label = التنقل الرئيسي
nav-collections = المجموعات
nav-import = استيراد
nav-pattern = فحص النمط
nav-partners = الشركاء
nav-groups = مجموعات المشاركة
nav-peers = العُقد النظيرة
nav-policy = السياسة
nav-audit = سجل التدقيق
nav-incidents = الحوادث
logout = تسجيل الخروج
breadcrumb = أنت هنا
none = لا شيء.
pages = الصفحات
page-prev = السابق
page-next = التالي
page-of = الصفحة { $page }

login-title = تسجيل الدخول
login-help = سجّل الدخول باسم المستخدم وكلمة المرور، ورمز تطبيق المصادقة إن كان دورك يتطلبه؛ أو دون اسم، برمز المسؤول لهذه العقدة أو بمفتاح واجهة البرمجة الخاص بك بصفتك شريكًا (`concord_…`).
login-user = اسم المستخدم (اتركه فارغًا عند استخدام رمز أو مفتاح)
login-token = كلمة المرور أو الرمز أو مفتاح واجهة البرمجة
login-totp = رمز تطبيق المصادقة (6 أرقام، إن طُلب)
login-submit = دخول
login-failed = بيانات الدخول هذه غير صالحة.
login-throttled = محاولات دخول كثيرة جدًا: انتظر قليلًا ثم حاول مرة أخرى.
login-oidc = تسجيل الدخول الموحّد
login-or = أو بكلمة مرور أو رمز أو مفتاح:
oidc-refused = حساب مزوّد الهوية { $name } لا يفتح جلسة على هذه العقدة: فهو غير مرتبط بمستخدم لهذه العقدة، أو أن دور ذلك المستخدم يتطلب عاملًا ثانيًا لم يُبلغ عنه المزوّد. يستطيع المشغّل معرفة السبب من سجل العقدة.
oidc-no-claim = لا يحتوي رمز الهوية من مزوّد الهوية على المطالبة { $claim } التي تسمّي المستخدم على هذه العقدة.
oidc-state = عملية الدخول هذه غير معروفة أو منتهية الصلاحية أو مستخدمة من قبل. ابدأ من جديد من صفحة الدخول.
oidc-browser = بدأت عملية الدخول هذه في متصفح آخر. ابدأ من جديد من صفحة الدخول.
oidc-provider-error = رفض مزوّد الهوية تسجيل الدخول: { $error }
oidc-failed = فشل تسجيل الدخول عبر مزوّد الهوية: { $reason }
oidc-busy = بدأت عمليات دخول كثيرة جدًا من عنوانك: انتظر بضع دقائق ثم حاول مرة أخرى.
oidc-too-long = جواب مزوّد الهوية أطول من { $limit } بايت.
oidc-done-title = تم تسجيل الدخول
oidc-continue = متابعة

error-admin-only = لا يفتح هذه الصفحة إلا مشغّل العقدة (رمز المسؤول).
error-role = لا يسمح دورك ({ $role }) بهذه الصفحة أو هذا الإجراء.
error-no-collection = لا توجد مجموعة { $name } يمكنك قراءتها.
error-no-object = لا يوجد كائن { $id } يمكنك رؤيته في هذه المجموعة.
error-no-version = لا يوجد إصدار { $version } من هذا الكائن يمكنك رؤيته.
error-no-page = لا توجد صفحة كهذه.
error-no-partner = لا يوجد شريك باسم { $name }.
error-filter = لم يُفهم عامل التصفية { $parameter }

collections-title = المجموعات
collections-none = لا توجد بعد مجموعة يمكنك قراءتها. استورد ملفًا لإنشاء واحدة.
col-title = العنوان
col-id = الاسم المستعار أو المعرّف
col-versions = إصدارات الكائنات
col-name = الاسم
col-type = النوع
col-tlp = TLP
col-date-added = تاريخ الإضافة
col-modified = آخر تعديل
col-property = الخاصية
col-object = الكائن
col-rule = القاعدة
col-detail = ما قررته
col-sighting = المشاهدة
col-count = العدد
col-first-seen = أول مشاهدة
col-last-seen = آخر مشاهدة
col-where = مكان المشاهدة
col-place = الموضع
col-reason = القاعدة المخالَفة
col-jurisdiction = الولاية القضائية
col-groups = المجموعات
col-read = يقرأ
col-write = يكتب
col-key-id = معرّف المفتاح
col-created = تاريخ الإنشاء
col-group = المجموعة
col-members = الأعضاء
col-collection = المجموعة
col-collections = المجموعات
col-default-tlp = TLP الافتراضي
col-recipients = المستلمون المسمّون
col-partner = الشريك
col-interval = الفاصل (ثانية)
col-last-round = آخر جولة
col-last-success = آخر نجاح
col-pulled = المسحوب
col-pushed = المدفوع
col-last-error = آخر خطأ
col-time = الوقت
col-direction = الاتجاه
col-door = المنفذ
col-decision = القرار
col-policy-version = إصدار السياسة

filter-text = نص في الاسم أو الوصف
filter-type = النوع
filter-marking = الوسم
filter-any = أي
filter-unmarked = بلا وسم
filter-added-after = أُضيف في هذا التاريخ أو بعده
filter-added-before = أُضيف قبل
filter-apply = تصفية
objects-caption = كائنات المجموعة، الأحدث أولًا
objects-count = { $count ->
    [zero] لا كائنات
    [one] كائن واحد
    [two] كائنان
    [few] { $count } كائنات
    [many] { $count } كائنًا
   *[other] { $count } كائن
}

object-graph = مخطط العلاقات
object-translated = تُعرض بعض الحقول مترجمة إلى لغتك؛ والأصل على بُعد نقرة واحدة تحت كل حقل.
object-show-original = الأصل
object-properties = الخصائص
object-markings = الوسوم
object-no-markings = لا توجد وسوم على الكائن.
object-versions = الإصدارات
object-refs-out = المراجع من هذا الكائن
object-refs-in = المراجع إلى هذا الكائن
object-refs-more = … و{ $count } غيرها لم تُدرج.
object-sightings = المشاهدات الواردة
object-json = JSON للإصدار { $version }

as-partner-label = العرض بصفة شريك
as-partner-none = (أنا)
as-partner-apply = عرض
as-partner-title = ما يتلقاه { $partner }
as-partner-steps = القواعد المطبقة بالترتيب
as-partner-copy = النسخة التي تغادر العقدة
decision-sent = يُرسل كما هو مخزّن
decision-rewritten = يُرسل بعد إعادة الكتابة
decision-withheld = محجوب

graph-title = مخطط العلاقات
graph-depth = عدد القفزات
graph-apply = إعادة الرسم
graph-nodes = { $count ->
    [zero] لا كائنات
    [one] كائن واحد
    [two] كائنان
    [few] { $count } كائنات
    [many] { $count } كائنًا
   *[other] { $count } كائن
}
graph-truncated = لا يُرسم إلا أقرب 200 كائن.
graph-help = اسحب للتحريك، واستخدم Ctrl مع عجلة الفأرة أو + و − للتكبير والتصغير، ومفاتيح الأسهم للتحريك، و0 للعودة إلى الحجم المرسوم؛ وتمرّر العجلة وحدها الرسم الكبير. كل عقدة رابط إلى صفحة كائنها.
graph-as-list = الكائنات نفسها في قائمة

import-title = استيراد
import-help = حزمة `STIX 2.1`، أو حدث MISP بصيغة JSON، أو قائمة مؤشرات اختراق فيها عنوان IP أو CIDR أو نطاق أو URL أو بصمة أو بريد إلكتروني في كل سطر. يُفحص كل كائن؛ والملف الذي لا يمكن قراءته لا يُخزَّن منه شيء.
import-collection = المجموعة
import-new-collection = أو مجموعة جديدة (اسم مستعار)
import-format = الصيغة
import-format-auto = اكتشاف تلقائي (STIX أو MISP)
import-format-stix = حزمة STIX 2.1
import-format-misp = حدث MISP بصيغة JSON
import-format-ioc = قائمة مؤشرات اختراق
import-file = الملف
import-submit = استيراد
import-no-file = اختر ملفًا غير فارغ.
import-no-collection = اختر مجموعة.
import-not-allowed = لا يحق لك الكتابة في { $name }.
import-report = تقرير الاستيراد
import-read-as = قُرئ بصفته
import-total = الكائنات المقروءة
import-added = المضاف
import-present = الموجود مسبقًا
import-problems = المشكلات
import-misp-events = { $count ->
    [one] حدث واحد
    [two] حدثان
    [few] { $count } أحداث
    [many] { $count } حدثًا
   *[other] { $count } حدث
}
import-misp-attributes = { $count ->
    [one] سمة واحدة
    [two] سمتان
    [few] { $count } سمات
    [many] { $count } سمةً
   *[other] { $count } سمة
}
import-lines = الأسطر
import-duplicates = المكرر: { $count }
import-open-collection = فتح المجموعة

pattern-title = فحص النمط
pattern-help = يفحص نمط `STIX 2.1` وفق القواعد النحوية وكل قاعدة في المواصفة.
pattern-label = نمط STIX
pattern-submit = فحص
pattern-invalid = النمط غير صالح:
pattern-valid = { $count ->
    [one] نمط صالح، فيه تعبير رصد واحد.
    [two] نمط صالح، فيه تعبيرا رصد.
   *[other] نمط صالح، عدد تعبيرات الرصد فيه: { $count }.
}

partners-title = الشركاء
partners-help = المنظمات الشريكة ومفاتيح واجهة البرمجة الخاصة بها (يُعرض معرّف المفتاح فقط) وصلاحياتها.
partners-node-jurisdiction = الولاية القضائية لهذه العقدة: { $code }.
partners-none = لا شركاء بعد (`concord partner add`).
partner-directory-heading = الدليل
partner-organisation = المنظمة
partner-identity = هوية STIX
partner-contacts = جهات الاتصال
partner-origin = أُضيف بواسطة
partner-changed = آخر تغيير
partner-agreement = الاتفاقية
partner-agreement-theirs = (يحمل الشريك { $version })
partner-last-activity = آخر نشاط
partner-unknown = غير معروف
partner-none = لا شيء
partner-never = أبدًا
partner-keys-heading = المفاتيح والبصمات
partner-key-value = المفتاح
partner-fingerprint = البصمة
partner-key-api-key = مفتاح واجهة البرمجة (المعرّف)
partner-key-node-key = مفتاح العقدة (Ed25519)
partner-key-client-certificate = شهادة العميل (SHA-256)
partner-contact-text = جهة الاتصال
partner-contact-email = البريد الإلكتروني
partner-contact-phone = الهاتف
partner-contact-website = الموقع
partner-update-heading = تغيير الصلاحيات
partner-update-help = تتغير الصلاحيات والمجموعات والولاية القضائية في مكانها: يحتفظ الشريك بمفتاح واجهة البرمجة، وتطبّق كل الخوادم التغيير عند الطلب التالي للشريك. يُسجَّل التغيير في سجل التدقيق.
partner-groups-field = المجموعات (مفصولة بفواصل)
partner-grants-caption = المجموعات التي يمكنه قراءتها والكتابة فيها
partner-update-submit = حفظ التغييرات
partner-updated = حُفظ. تطبّق كل الخوادم التغيير خلال ثوانٍ.
partner-pending = هذا التغيير يوسّع ما يتلقاه الشريك عبر الحدود: ينتظر موافقة مُصدِر ثانٍ ({ $id }).
partner-not-found = لا يوجد شريك بهذا الاسم.
groups-title = مجموعات المشاركة
groups-help = يذهب `TLP:GREEN` إلى مجموعات المجموعة (أو المجتمع كله)، ويذهب `TLP:AMBER` إلى مستلميها المسمّين.
groups-members = المجموعات وأعضاؤها
groups-sharing = طريقة مشاركة كل مجموعة
groups-community = المجتمع كله
peers-title = العُقد النظيرة
peers-help = خوادم TAXII التي تتزامن معها هذه العقدة، وحالة آخر جولة لكل منها.
peers-none = لا عُقد نظيرة (`concord peer add`).
peers-failures = إخفاقات متتالية: { $count }
policy-title = سياسة الإخراج
policy-help = السياسة السارية (للقراءة فقط؛ عدّل قسم `[policy]` في `concord.toml` ثم أعد التشغيل).
policy-version = الإصدار
audit-title = سجل التدقيق
audit-intact = سلسلة التجزئة سليمة: عدد الإدخالات { $count }.
audit-broken = سلسلة التجزئة مكسورة
audit-scope = تم التحقق هنا: الإدخالات المعروضة و{ $count } من نقاط التحقق الموقعة؛ يتحقق `concord audit verify` من الباقي.
col-objects = إصدارات الكائنات
col-transformations = التحويلات

## الحوادث (issue 18): اللوحة وصفحة الحادث ونماذجها.
incidents-title = الحوادث
incidents-help = الحوادث المفتوحة وطلبات المساعدة التي تحملها، والمتأخرة أولًا. تنتقل الطلبات والردود إلى الشركاء عبر المزامنة ومن خلال سياسة الإخراج.
incidents-open-heading = الحوادث المفتوحة
incidents-none = لا توجد حادثة مفتوحة.
incidents-requests-heading = طلبات المساعدة حسب الحالة
incidents-no-requests = لا توجد طلبات مساعدة.
incident-none = لا توجد حادثة { $id } على هذه العقدة.
incident-criticality = الخطورة (0–100 أو none أو low أو medium أو high أو critical)
incident-affects = البلدان المتأثرة (رمز ISO 3166-1 من حرفين)
incident-opened-by = فتحها
incident-requests = الطلبات
incident-overdue = المتأخرة
incident-overdue-flag = متأخر
incident-incoming = (مطلوب من هذه العقدة)
incident-status = الحالة
incident-deadline = الموعد النهائي
incident-deadline-utc = الموعد النهائي (UTC)
incident-from = من
incident-to = إلى
incident-ask = المطلوب
incident-incident = الحادثة
incident-description = الوصف
incident-outcome = النتيجة
incident-priority = الأولوية (0–100 أو none أو low أو medium أو high أو critical)
incident-note = السبب أو النتيجة (الرفض يحتاج إلى سبب)
incident-open-heading = فتح حادثة
incident-open-submit = افتح الحادثة
incident-request-heading = طلب المساعدة من شريك
incident-request-submit = أرسل الطلب
incident-respond-heading = الطلبات الموجهة إلى هذه العقدة
incident-respond-submit = رد
incident-settled = محسوم: لا يقبل هذا الطلب ردًا آخر.
incident-timeline = الخط الزمني
timeline-opened = فتحها { $who }
timeline-request = طلب { $who }
timeline-answer = رد { $who }
timeline-event = حدث
timeline-closed = أغلقها { $who }
incident-status-open = مفتوحة
incident-status-closed = مغلقة
incident-status-pending = قيد الانتظار
incident-status-acknowledged = تم الاستلام
incident-status-accepted = مقبول
incident-status-declined = مرفوض
incident-status-done = منجز

## Issue 25, item 2: content (Markdown descriptions, citations, external references).
object-external-refs = المراجع الخارجية
object-url-not-web = (ليس عنوان http أو https، لذا لا يُعرض رابطًا)

## Issue 25, item 4: reading an object (references named and grouped, effective TLP,
## error pages, the words of the audit log and of the policy rules).
object-tlp-default = القيمة الافتراضية للمجموعة: لا يحمل هذا الكائن علامة TLP
refs-in-group = … { $label } ← هذا الكائن
refs-out-group = هذا الكائن { $label } ← …
refs-via = التفاصيل
error-home = العودة إلى المجموعات
error-title-400 = طلب غير صالح
error-title-401 = لم يتم تسجيل الدخول
error-title-403 = ممنوع
error-title-404 = غير موجود
error-title-413 = كبير جدًا
error-title-429 = طلبات كثيرة جدًا
error-title-503 = مشغول
error-title-other = خطأ
col-seq = الإدخال
col-url = العنوان
audit-direction-egress = صادر
audit-direction-ingress = وارد
audit-direction-admin = تغيير
audit-decision-sent = أُرسل
audit-decision-rewritten = أُعيدت كتابته
audit-decision-withheld = حُجب
audit-decision-added = أُضيف
audit-decision-already-present = موجود مسبقًا
audit-decision-deleted = حُذف
audit-decision-changed = تغيّر
rule-permission = الإذن
rule-agreement = اتفاقية المشاركة
rule-tlp = بوابة TLP
rule-addressed = موجّه إلى شركاء مسمّين
rule-jurisdiction = الولاية القضائية
rule-important-data = البيانات المهمة
rule-granular-markings = العلامات الدقيقة
rule-grant = الإذن الخاص
rule-personal-data = البيانات الشخصية
rule-validation = صلاحية النسخة
rule-references = المراجع
rule-identifier = المعرّف

# Home dashboard and graph (issue 25, items 3 and 5)
nav-home = الرئيسية
dashboard-title = الرئيسية
dashboard-new = الجديد منذ زيارتك الأخيرة
dashboard-first-visit = زيارتك الأولى: ما أُضيف في الأيام السبعة الأخيرة، منذ
dashboard-since = أُضيف منذ
dashboard-nothing-new = لا جديد.
dashboard-total = المجموع
dashboard-sightings-heading = المشاهدات المستلمة في آخر { $days } يومًا
dashboard-sightings-cut = وصلت في هذه الفترة مشاهدات أكثر من { $max } المحسوبة هنا (الأولى وصولًا).
dashboard-no-sightings = لم تُستلم أي مشاهدات.
dashboard-sightings-by-indicator = المشاهدات حسب المؤشر واليوم
dashboard-sightings-by-partner = المشاهدات حسب الشريك واليوم (من أرسلها)
dashboard-indicator = المؤشر
dashboard-sightings = المشاهدات
dashboard-times-seen = مرات الرصد
dashboard-false-positives = بلاغات الإيجابيات الكاذبة
dashboard-others = جميع الآخرين
dashboard-this-node = هذه العقدة
dashboard-waiting = طلبات تنتظر الرد
dashboard-nothing-waiting = لا يوجد طلب ينتظر الرد.
dashboard-who-answers = من يرد
dashboard-we-answer = هذه العقدة
dashboard-more-requests = { $count ->
    [zero] لا مزيد على لوحة الحوادث
    [one] طلب آخر على لوحة الحوادث
    [two] طلبان آخران على لوحة الحوادث
    [few] { $count } طلبات أخرى على لوحة الحوادث
    [many] { $count } طلبًا آخر على لوحة الحوادث
   *[other] { $count } طلب آخر على لوحة الحوادث
}
dashboard-sync = حالة المزامنة
dashboard-health = الحالة
dashboard-health-ok = متزامن
dashboard-health-failing = متعثّر
dashboard-health-never = لم تجرِ أي جولة بعد
dashboard-week = ما أُرسل إلى كل شريك هذا الأسبوع
dashboard-week-yours = ما استلمته هذا الأسبوع
dashboard-week-caption = الكائنات المستلمة حسب الشريك واليوم، من سجل التدقيق
dashboard-objects-received = الكائنات المستلمة
dashboard-withheld = المحجوب
dashboard-transfers = عمليات النقل
dashboard-transfers-cut = لا تُحسب إلا أحدث 10,000 عملية نقل هذا الأسبوع.
dashboard-nothing-sent = لم يُرسل شيء هذا الأسبوع.
chart-as-table = الأرقام نفسها في جدول
graph-legend = مفتاح الألوان
graph-group-expand = مجموعة: اضغط Enter أو انقر لعرض كائناتها
graph-no-group = expand: لا توجد مجموعة { $key } في هذا الرسم (الرابط قديم؛ أعد رسم الرسم)
nav-approvals = الموافقات
approvals-title = موافقات معلّقة
approvals-help = التغييرات التي توسّع ما يتلقاه شريك عبر الحدود (مستوى TLP افتراضي أدنى، أو مستلم أو مجموعة مشاركة جديدة، أو منح في حادث) تنتظر هنا موافقة مُصدِر ثانٍ. الموافقة تطبّق التغيير، ويُسجَّل الاسمان في سجل التدقيق.
approvals-off = الإصدار بأربع أعين غير مفعّل على هذه العقدة ({ $key } في concord.toml): تُطبَّق هذه التغييرات فورًا.
approvals-none = لا يوجد تغيير ينتظر الموافقة.
approvals-requested-by = طلبه
approvals-own = أنت من طلب هذا التغيير: يجب أن يوافق عليه مُصدِر آخر.
approvals-not-person = أنت مسجّل الدخول دون اسم (رمز المسؤول): لا يقبل الإصدار بأربع أعين إلا موافقات المُصدِرين المسمَّين.
approvals-approve = الموافقة والتطبيق
approvals-reject = رفض
approvals-withdraw = سحب
approvals-reason = السبب (اختياري)
approvals-done-approved = تمت الموافقة: طُبّق التغيير.
approvals-done-rejected = رُفض: لم يُطبَّق شيء.
approval-subject-collection = المجموعة { $name }
approval-subject-partner = الشريك { $name }
approval-subject-incident = الحادث { $name }
approval-list-separator = {"، "}
widens-tlp = يتلقى { $partner } ({ $jurisdiction }) المستوى { $tlp }
widens-tlp-from = يتلقى { $partner } ({ $jurisdiction }) المستوى { $tlp } من { $collection }
widens-unmarked = يتلقى { $partner } ({ $jurisdiction }) الكائنات غير الموسومة ({ $tlp })
widens-unmarked-from = يتلقى { $partner } ({ $jurisdiction }) الكائنات غير الموسومة ({ $tlp }) من { $collection }
widens-grant = يتلقى { $partner } ({ $jurisdiction }) { $categories } كما كُتبت في { $incident }
widens-group = ينضم { $partner } ({ $jurisdiction }) إلى مجموعة المشاركة { $group }
widens-domestic = ينتقل { $partner } من { $from } إلى { $to } ويصبح شريكًا محليًا
widens-personal-data = يتلقى { $partner } ({ $jurisdiction }) الفئة { $category } بإجراء { $to } بدلًا من { $from }
widens-agreement = يخرج { $partner } ({ $jurisdiction }) من الاتفاقية { $from } إلى { $to }
widens-agreement-none = يخرج { $partner } ({ $jurisdiction }) من الاتفاقية { $from }، ولا تنطبق عليه أي اتفاقية
widens-pseudonyms = يتلقى { $partner } ({ $jurisdiction }) الأسماء المستعارة لمجموعة { $group } في { $collection }
dashboard-approvals = موافقات معلّقة
dashboard-approvals-count = { $count ->
    [zero] لا يوجد تغيير ينتظر مُصدِرًا ثانيًا.
    [one] تغيير واحد ينتظر مُصدِرًا ثانيًا.
    [two] تغييران ينتظران مُصدِرًا ثانيًا.
    [few] { $count } تغييرات تنتظر مُصدِرًا ثانيًا.
   *[other] { $count } تغييرًا ينتظر مُصدِرًا ثانيًا.
}
dashboard-no-approvals = لا يوجد تغيير ينتظر الموافقة.

# شرح سياسة الإخراج (issue 25): رسالة لكل بند من concord_policy::explain::ENGLISH، ومعاملاته متغيرات.
explain-and = { "؛ " }
explain-colon = :
explain-withheld = محجوب: { $reason }
explain-permission-may-read = يجوز للشريك { $partner } قراءة المجموعة { $collection }
explain-permission-may-not-read = لا يجوز للشريك { $partner } قراءة المجموعة { $collection } (`partner add --read`): لا يخرج شيء عبر هذه المجموعة
explain-permission-none = لا يوجد إذن بالقراءة
explain-stored-unparsable = لا يمكن البتّ في الكائن المخزَّن: { $error }
explain-stored-missing = الكائن المخزَّن غير موجود
explain-no-copy = لم تُنشأ نسخة
explain-tlp-definition-public = تعريف علامة TLP: عام، يُرسل دائمًا
explain-tlp-level = { $tlp } ({ $whence })
explain-tlp-from-markings = أشدّ مستوى TLP في `object_marking_refs`
explain-tlp-from-default = لا توجد علامة TLP: القيمة الافتراضية للمجموعة `default_tlp`
explain-tlp-may-receive = يجوز للشريك { $partner } تلقّيه: { $why }
explain-tlp-clear-everyone = يُرسل TLP:CLEAR إلى كل شريك لديه إذن بالقراءة
explain-tlp-green-community = المجموعة مشتركة مع المجتمع كله
explain-tlp-green-shared-groups = يشترك مع المجموعة في الفئات { $groups }
explain-tlp-named-recipient = مستلم مسمّى للمجموعة ({ $recipients })
explain-tlp-green-not-in-groups = يُشارَك TLP:GREEN مع الفئات { $groups } فقط، والشريك { $partner } لا ينتمي إلى أيٍّ منها
explain-tlp-not-recipient = يذهب { $tlp } إلى المستلمين المسمّين للمجموعة فقط، والشريك { $partner } ليس منهم
explain-tlp-red-never = لا يغادر TLP:RED العقدة أبدًا
explain-markings-not-list = `object_marking_refs` ليست قائمة
explain-markings-non-string = تحتوي `object_marking_refs` على قيمة ليست نصًّا: { $value }
explain-marking-undecidable = تعريف العلامة { $marking } يدّعي أنه TLP لكنه لا يذكر مستوى تعرفه هذه العقدة
explain-marking-unknown = `object_marking_refs`: { $marking } ليس تعريف علامة تحتفظ به هذه المجموعة، فلا يمكن البتّ فيما يطلبه
explain-addressed-to = موجّه إلى { $names }
explain-addressed-via = يشير إلى { $request } الموجّه إلى { $names }
explain-addressed-named = الشريك { $partner } مستلم مسمّى لهذا الكائن
explain-addressed-none-in-common = لا تسمّي مراجعه الموجّهة أي شريك مشترك، فلا يجوز للشريك { $partner } تلقّيه
explain-addressed-others = موجّه إلى { $names } فقط، والشريك { $partner } ليس منهم
explain-agreement-ended = انتهت الاتفاقية { $agreement } مع { $partner } في { $end } (IEP 2.0 `end_date`): لا يُرسل شيء بعدها
explain-agreement-not-yet = تسري الاتفاقية { $agreement } مع { $partner } اعتبارًا من { $start } (IEP 2.0 `start_date`): لا يُرسل شيء قبلها
explain-agreement-received-ended = انتهت الاتفاقية التي تحتفظ بها عقدة { $partner } مع هذه العقدة ({ $version }) في { $end } (IEP 2.0 `end_date`): لا يُرسل شيء بعدها
explain-agreement-version-none = لا يوجد
explain-agreement-door = الاتفاقية { $agreement }: { $reason }
explain-iep-automated-door = IEP 2.0 `permitted_actions` { $actions }: لا ينقل الباب الآلي { $door } شيئًا (فالآلة ستتصرّف بناءً عليه)
explain-iep-feed-door = IEP 2.0 `permitted_actions` { $actions }: لا تنقل التغذية { $door } شيئًا (قواعد المستشعرات تتصرّف بشكل مرئي خارج شبكات المستلم)
explain-agreement-applies = تسري الاتفاقية { $agreement } على { $partner }
explain-agreement-until = سارية حتى { $end } (IEP 2.0 `end_date`)
explain-agreement-permitted-actions = `permitted_actions` { $actions }
explain-agreement-transfer = آلية النقل { $mechanism }، والأساس القانوني: { $basis }
explain-no-mechanism-code = لا يوجد رمز آلية
explain-not-stated = غير مذكور
explain-pap-too-strict = { $pap } أشدّ من { $limit }، وهو أشدّ مستوى PAP ينقله الباب الآلي { $door } إلى { $partner } بموجب { $whose }
explain-pap-of-agreement = قيمة `pap_automated` في الاتفاقية { $agreement }
explain-pap-default = القيمة الافتراضية (لا توجد اتفاقية)
explain-pap-within = { $pap } لا يتجاوز { $limit }، وهو أشدّ مستوى PAP ينقله الباب الآلي { $door }
explain-pap-person = { $pap }: يقرأ { $door } شخصٌ، وليس بابًا آليًا
explain-attribution-created-by-removed = حُذفت `created_by_ref` (الاتفاقية { $agreement }: نَسب IEP 2.0 ممنوع)
explain-attribution-identity = الاتفاقية { $agreement }: نَسب IEP 2.0 ممنوع: لا تغادر الهوية التي قد تسمّي المُنتِج
explain-attribution-identity-ref = الاتفاقية { $agreement }: نَسب IEP 2.0 ممنوع: الخاصية { $property } تسمّي هوية
explain-attribution-removed = { $removed }
explain-attribution-refs-removed = حُذفت المراجع إلى الهويات من { $properties } (الاتفاقية { $agreement }: نَسب IEP 2.0 ممنوع)
explain-jurisdiction-none = ليس للعقدة ولاية قضائية: يُعدّ { $partner } ({ $partner_jurisdiction }) عبر الحدود
explain-jurisdiction-cross = العقدة { $node }، والشريك { $partner } في { $partner_jurisdiction }: عبر الحدود
explain-jurisdiction-domestic = العقدة { $node }، والشريك { $partner } في { $partner_jurisdiction }: محلي
explain-important-none = لا توجد علامة بيانات مهمة
explain-important-cross = موسوم بوصفه بيانات مهمة ({ $marking }): لا يعبر الحدود أبدًا
explain-important-domestic = موسوم بوصفه بيانات مهمة ({ $marking })؛ الشريك محلي، فيجوز إرساله
explain-important-withheld = موسوم بوصفه بيانات مهمة ({ $marking })، وهي لا تعبر الحدود أبدًا (العقدة { $node }، والشريك { $partner } في { $partner_jurisdiction })
explain-node-without-jurisdiction = بلا ولاية قضائية
explain-granular-nothing = لم يُحذف شيء
explain-granular-removed = حُذفت { $selector } (علامة دقيقة: { $why })
explain-granular-important = بيانات مهمة
explain-granular-unresolved = { $marking } غير محلولة
explain-granular-absent = حُذفت العلامات الدقيقة لخصائص غير موجودة
explain-grant = مُنح إذن على { $scope } للشريك { $partner }: تُرسل { $categories } كما كُتبت
explain-pii-allowed = سُمح بـ { $category } في { $place } (القاعدة { $rule })
explain-pii-pseudonymised = استُبدل اسم مستعار بـ { $category } في { $place } (القاعدة { $rule })
explain-pii-redacted = حُجبت { $category } في { $place } (القاعدة { $rule })
explain-pii-redacted-no-key = حُجبت { $category } في { $place } (لا يوجد مفتاح للأسماء المستعارة؛ القاعدة { $rule })
explain-pii-drop = { $category } في { $place } (القاعدة { $rule }: إسقاط)
explain-pii-pattern-unparsable = تعذّر تحليل النمط في { $path }: { $error }
explain-pii-id-recomputed = أُعيد حساب المعرّف { $old } ليصبح { $new }
explain-pii-all-allowed = كل فئات البيانات الشخصية مسموح بها للشريك { $partner } (القاعدة { $rules }): لم يُفحص
explain-pii-none-found = لم يُعثر على بيانات شخصية لا تسمح بها السياسة
explain-place-literal = القيمة الحرفية { $literal } في { $path }
explain-place-key = { $path } (مفتاح)
explain-rule-grant = إذن على { $scope } للشريك { $partner }
explain-rule-partner = الشريك { $partner }
explain-rule-pair = الزوج { $from } ← { $to }
explain-sent-as-stored = أُرسل كما خُزّن، بايتًا ببايت
explain-copy-validates = النسخة المعاد كتابتها صالحة (STIX 2.1)
explain-copy-invalid = ستكون نسخة الشريك غير صالحة ({ $violation }) بعد: { $changes }
explain-ref-valid-without = صالح من دون أيٍّ من مراجعه: يُتلقّى أيًّا كان مصير الكائنات التي يشير إليها
explain-ref-withheld = يشير إلى كائنات لا يتلقّاها هذا الشريك ({ $removed })، ومن دون المرجع لا يكون STIX صالحًا: { $violation }
explain-ref-removed = حُذف { $count } من المراجع ({ $removed })، و{ $renamed } منها يتبع كائنات أُعيدت تسميتها
explain-ref-removed-item = { $property }: { $why }
explain-ref-all-received = كل كائن مُشار إليه يُتلقّى كما أُشير إليه
explain-ref-too-deep = { $id } بعيد جدًا في سلسلة المراجع فلا يمكن البتّ فيه
explain-ref-target-withheld = { $id } محجوب
explain-ref-cycle = { $id }: حلقة من المراجع لا يمكن البتّ فيها
explain-ref-sco-not-held = { $id }: كائن SCO لا تحتفظ به هذه المجموعة (معرّفه مشتق من قيمته)
explain-ref-other-collection = { $id } محفوظ في مجموعة أخرى لا تشاركه هذه المجموعة
explain-sco-no-key = يحتاج كائن SCO المعاد كتابته إلى معرّف مفتاحي، وليس لدى العقدة مفتاح
explain-keyed-id = تختلف النسخة عن كائن SCO المخزَّن: تُرسل بالمعرّف المفتاحي { $id }
