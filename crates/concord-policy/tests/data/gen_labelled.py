#!/usr/bin/env python3
"""Generates pii_labelled.jsonl: the labelled set for the PII detectors' precision/recall test.

Check digits are computed here with the standards' own arithmetic (ISO 7064 MOD 11-2 for PRC
ids, Luhn for cards and Emirates IDs, ISO 7064 MOD 97-10 for IBANs), independently of the Rust
code under test. Run: python3 gen_labelled.py > pii_labelled.jsonl
"""
import json
import random

random.seed(20261130)

def mod11_2(body):
    s = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(body))
    c = (12 - s % 11) % 11
    return 'X' if c == 10 else str(c)

def prc(region, date, seq):
    body = f"{region}{date}{seq}"
    return body + mod11_2(body)

def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)

def luhn_ok(s):
    return luhn_digit(s[:-1]) == s[-1]

def iban(country, bban):
    num = ''.join(str(int(c, 36)) for c in bban + country + '00')
    check = 98 - int(num) % 97
    return f"{country}{check:02d}{bban}"

def spaced(s):
    return ' '.join(s[i:i + 4] for i in range(0, len(s), 4))

def ar_digits(s):
    return ''.join(chr(0x0660 + int(c)) if c.isdigit() else c for c in s)

lines = []

def add(lang, text, *spans):
    for cat, val in spans:
        assert val in text, (text, val)
    lines.append({"text": text, "lang": lang,
                  "spans": [{"category": c, "value": v} for c, v in spans]})

# ---------------------------------------------------------------- PRC resident ids
ids = [prc("110105", "19491231", "002"), prc("440524", "19800101", "001"),
       prc("310104", "19920815", "437"), prc("510107", "20010229"[:0] or "20000229", "128"),
       prc("650102", "19751103", "551"), prc("330106", "19880512", "209"),
       prc("420111", "19660720", "318"), prc("370202", "20050107", "046")]
xs = []
for seq in range(100, 400):
    cand = prc("320102", "19900304", f"{seq:03d}")
    if cand.endswith('X'):
        xs.append(cand)
    if len(xs) == 2:
        break
ids += xs
add("zh", f"嫌疑人身份证号：{ids[0]}，户籍北京。", ("national_id", ids[0]))
add("zh", f"受害者张某（身份证 {ids[1]}）报案称其账户被盗。", ("national_id", ids[1]))
add("en", f"The leaked HR file lists employee ID {ids[2]} and a scan of the card.", ("national_id", ids[2]))
add("zh", f"居民身份证号码{ids[3]}已挂失", ("national_id", ids[3]))
add("zh", f"钓鱼网站收集的身份信息包括 {ids[4][:6]} {ids[4][6:14]} {ids[4][14:]} 这样的号码。",
    ("national_id", f"{ids[4][:6]} {ids[4][6:14]} {ids[4][14:]}"))
add("en", f"Dump sample row: name=Li Wei;id={ids[5]};city=Hangzhou", ("national_id", ids[5]))
add("ar", f"رقم الهوية الصينية للمشتبه به {ids[6]} حسب التقرير.", ("national_id", ids[6]))
add("zh", f"身份证号 {ids[7]}，手机号码同上。", ("national_id", ids[7]))
add("zh", f"身份证：{ids[8]}", ("national_id", ids[8]))
add("en", f"ID number {ids[9].lower()} (lower-case x) found in paste.", ("national_id", ids[9].lower()))
# hard negatives: wrong check character, impossible dates, bad province
bad = ids[0][:-1] + ('1' if ids[0][-1] != '1' else '2')
add("zh", f"无效身份证号{bad}校验失败。")
body = "11010519490230002"  # 30 February
add("zh", f"伪造号码 {body + mod11_2(body)} 日期不存在。")
body = "99010519490101002"  # province 99
add("en", f"Synthetic id {body + mod11_2(body)} has no province.")
add("en", f"Order number 2024{ids[1][4:]}00 shipped.")
add("zh", f"订单号{ids[2][:-1]}号已发货")  # 17 digits

# ---------------------------------------------------------------- UAE Emirates IDs
def emirates(year, serial):
    body = f"784{year}{serial}"
    return body + luhn_digit(body)
eids = [emirates("1985", "1234567"), emirates("1990", "7654321"), emirates("2001", "0456789"),
        emirates("1978", "3141592")]
fmt = lambda e: f"{e[:3]}-{e[3:7]}-{e[7:14]}-{e[14]}"
add("ar", f"رقم الهوية الإماراتية {fmt(eids[0])} للمتصل.", ("national_id", fmt(eids[0])))
add("en", f"Emirates ID {eids[1]} was used to register the SIM.", ("national_id", eids[1]))
add("ar", f"بطاقة الهوية: {fmt(eids[2])}", ("national_id", fmt(eids[2])))
add("en", f"KYC record: EID {fmt(eids[3])}, nationality AE.", ("national_id", fmt(eids[3])))
wrong = eids[0][:-1] + str((int(eids[0][-1]) + 1) % 10)
add("ar", f"رقم هوية غير صالح {fmt(wrong)} في النموذج.")

# ---------------------------------------------------------------- payment cards
cards = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
         "3530111333300000", "4012888888881881", "5105105105105100", "371449635398431",
         "30569309025904", "6200000000000005", "2223003122003222", "4000056655665556"]
for c in cards:
    assert luhn_ok(c), c
add("en", f"Card {spaced(cards[0])} exp 12/27 was used at the skimmer.", ("payment_card", spaced(cards[0])))
add("en", f"Carding forum post: {cards[1]}|09|2026|123", ("payment_card", cards[1]))
add("en", f"AMEX {cards[2][:4]} {cards[2][4:10]} {cards[2][10:]} appeared in the dump.",
    ("payment_card", f"{cards[2][:4]} {cards[2][4:10]} {cards[2][10:]}"))
add("zh", f"被盗信用卡号：{'-'.join(cards[3][i:i+4] for i in range(0, 16, 4))}。",
    ("payment_card", '-'.join(cards[3][i:i+4] for i in range(0, 16, 4))))
add("zh", f"银联卡{cards[9]}在境外被盗刷", ("payment_card", cards[9]))
add("ar", f"رقم البطاقة {spaced(cards[4])} تم تسريبه.", ("payment_card", spaced(cards[4])))
add("en", f"The POS malware exfiltrated track data for {cards[5]} and {cards[6]}.",
    ("payment_card", cards[5]), ("payment_card", cards[6]))
add("en", f"Second sample: {cards[7]} (Amex test number).", ("payment_card", cards[7]))
add("en", f"Diners {cards[8]} flagged.", ("payment_card", cards[8]))
add("en", f"Mastercard 2-series {spaced(cards[10])} in the log.", ("payment_card", spaced(cards[10])))
add("ar", f"بطاقة فيزا {cards[11]} مسروقة", ("payment_card", cards[11]))
# hard negatives
add("en", "Card 4111 1111 1111 1112 fails the Luhn check.")
add("en", "Tracking number 1Z999AA10123456784 and invoice 12345678901234.")
add("en", "Luhn-valid but no known issuer: 1234567812345670.")
add("zh", "交易金额 ¥1,234,567.89，流水号 20240115000123。")
add("en", "Timestamp in ms: 1705312800000; nanoseconds 1705312800000000000.")

# ---------------------------------------------------------------- IBAN
ib = [
    "GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
    "SA0380000000608010167519", "AE070331234567890123456",
    iban("EG", "0019000500000000263180002"), iban("QA", "DOHB00001234567890ABCDEFG"),
    iban("JO", "CBJO0010000000000131000302"), iban("KW", "CBKU0000000000001234560101"),
    iban("NL", "ABNA0417164300"), iban("ES", "21000418450200051332"),
    iban("CH", "0076201162385295 7"[:-2].replace(' ', '') + "7"),
    iban("BH", "BMAG00001299123456"), iban("IT", "X0542811101000000123456"),
]
for i in ib:
    num = ''.join(str(int(c, 36)) for c in i[4:] + i[:4])
    assert int(num) % 97 == 1, i
add("en", f"Wire the ransom to IBAN {ib[0]} by Friday.", ("iban", ib[0]))
add("en", f"Mule account: {spaced(ib[1])}.", ("iban", spaced(ib[1])))
add("en", f"BEC email asked to change beneficiary to {spaced(ib[2])}", ("iban", spaced(ib[2])))
add("ar", f"رقم الآيبان {ib[3]} لحساب الضحية.", ("iban", ib[3]))
add("ar", f"تم تحويل المبلغ إلى الحساب {spaced(ib[4])} في دبي.", ("iban", spaced(ib[4])))
add("ar", f"الحساب المصري {ib[5]} استخدم في الاحتيال.", ("iban", ib[5]))
add("en", f"Qatar beneficiary {ib[6]}", ("iban", ib[6]))
add("ar", f"آيبان أردني: {spaced(ib[7])}", ("iban", spaced(ib[7])))
add("ar", f"رقم الحساب الكويتي {ib[8]}", ("iban", ib[8]))
add("zh", f"诈骗分子要求汇款至荷兰账户{ib[9]}。", ("iban", ib[9]))
add("zh", f"收款账户：{spaced(ib[10])}（西班牙）", ("iban", spaced(ib[10])))
add("en", f"Swiss IBAN {ib[11]} and Bahraini IBAN {ib[12]}.", ("iban", ib[11]), ("iban", ib[12]))
add("en", f"Italian account {ib[13]} used by the mule.", ("iban", ib[13]))
# hard negatives
add("en", f"Wrong check digits: {ib[0][:2]}{(int(ib[0][2:4]) + 1) % 100:02d}{ib[0][4:]}.")
add("en", f"Truncated: {ib[1][:-1]} is one digit short.")
add("en", "Not a country: US12345678901234567890 and ZZ12ABCD1234.")
add("en", "Reference DE2024-TLP-AMBER and model XY12 3456.")

# ---------------------------------------------------------------- phone numbers
phones = [
    ("zh", "请联系张先生，手机13812345678，微信同号。", "13812345678"),
    ("zh", "客服电话：+86 10 6552 9988（工作日）", "+86 10 6552 9988"),
    ("zh", "攻击者留下的联系方式：139 1234 5678", "139 1234 5678"),
    ("zh", "短信来自+8615912345678，内容为钓鱼链接。", "+8615912345678"),
    ("zh", "上海办公室 (021) 6321 5678", "(021) 6321 5678"),
    ("zh", "深圳号码0755-88881234被用于诈骗。", "0755-88881234"),
    ("en", "The caller ID showed +86 186 0123 4567.", "+86 186 0123 4567"),
    ("ar", "للتواصل: 0501234567", "0501234567"),
    ("ar", "رقم الجوال +966 55 123 4567 مرتبط بالحساب.", "+966 55 123 4567"),
    ("ar", "اتصل بنا على ٠٥٠١٢٣٤٥٦٧ من الساعة التاسعة.", "٠٥٠١٢٣٤٥٦٧"),
    ("ar", "الرقم الإماراتي +971 50 123 4567 أرسل الرسالة.", "+971 50 123 4567"),
    ("ar", "هاتف المكتب في دبي 04 331 2345", "04 331 2345"),
    ("ar", "رقم مصري: 010 1234 5678", "010 1234 5678"),
    ("ar", "الهاتف الدولي 00966112345678 للشركة.", "00966112345678"),
    ("ar", "مكتب الرياض 011 465 1234", "011 465 1234"),
    ("en", "Call the helpdesk at +44 20 7946 0958.", "+44 20 7946 0958"),
    ("en", "UK mobile 07911 123456 received the OTP.", "07911 123456"),
    ("en", "US contact: (202) 555-0143, ask for Sam.", "(202) 555-0143"),
    ("en", "Actor's WhatsApp +1 415 555 0132 was listed.", "+1 415 555 0132"),
    ("en", "Berlin office 030 12345678.", "030 12345678"),
    ("en", "French number +33 1 42 68 53 00 in the whois.", "+33 1 42 68 53 00"),
    ("en", "Egyptian mobile +20 10 1234 5678 posted the ad.", "+20 10 1234 5678"),
    ("en", "Whois registrant phone: +966.112345678", "+966.112345678"),
    ("zh", "联系人：王五 电话：021-63215678", "021-63215678"),
    ("zh", "号码１３９１２３４５６７８（全角）", "１３９１２３４５６７８"),
    ("ar", "أرسل المهاجم الرسالة من الرقم +20 2 2345 6789.", "+20 2 2345 6789"),
]
for lang, text, val in phones:
    if val is None:
        add(lang, text)
    else:
        add(lang, text, ("phone", val))
add("en", "Tel: +49 30 901820, Fax: +49 30 9018 2222 and +49 30 9018 2223.",
    ("phone", "+49 30 901820"), ("phone", "+49 30 9018 2222"), ("phone", "+49 30 9018 2223"))
add("zh", "举报电话 010-65529988，传真 010-65529989。", ("phone", "010-65529988"), ("phone", "010-65529989"))
add("en", "Tel: +49 30 901820, Fax: +49 30 9018 2222.", ("phone", "+49 30 901820"), ("phone", "+49 30 9018 2222"))
add("en", "Compliant with IEEE 1686-2013 and IEC 62443-3-3:2013.")
add("zh", "两个号码：13812345678 和 13987654321。", ("phone", "13812345678"), ("phone", "13987654321"))
# hard negatives
for lang, text in [
    ("en", "Released on 2024-01-15 at 10:20:30 UTC."),
    ("en", "Windows build 10.0.19041.1 and version 2.14.1.3."),
    ("en", "The service listens on port 8080 and 443; PID 31337."),
    ("en", "Uses T1059.001 and T1566.002 (ATT&CK), see CVE-2021-44228 and CVE-2023-4863."),
    ("en", "Price: $1,299.99, or 12 payments of $108.33."),
    ("zh", "价格为人民币 12,800 元，订单编号 A20240115-0001。"),
    ("en", "indicator--12345678-1234-4123-8123-123456789012 was revoked."),
    ("en", "file hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("en", "md5 44d88612fea8a8f36de82e1278abb02f, sha1 3395856ce81f2b7382dee72602f798b642f14140"),
    ("en", "Sample size 1234567 bytes; entropy 7.99."),
    ("zh", "2023年12月31日发布，共 15 页。"),
    ("ar", "تاريخ التقرير ٢٠٢٤/٠١/١٥ الإصدار ٣.٢.١"),
    ("en", "Short number 12345 and +86 138 1234 567 (one digit short)."),
    ("en", "Bitcoin block 825000 at height 0000000000000000000215a2b3c4d5e6f70809."),
    ("en", "ISBN 978-3-16-148410-0 and ISSN 0317-8471."),
    ("en", "Registry key HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\1234567"),
    ("en", "The loader allocates 0x10000000 bytes at 0x7ffe0000."),
    ("en", "Coordinates 39.9042, 116.4074 (Beijing)."),
    ("en", "Event ID 4624 and 4688; Sysmon event 1, 3 and 11."),
    ("en", "Uptime 1234567890 seconds since 1970."),
    ("zh", "恶意软件版本号 v3.10.2，编译时间 2022-03-14 09:26:53。"),
    ("ar", "تم رصد 15000 محاولة دخول خلال 24 ساعة."),
    ("en", "Attack group G0016 used S0154 and C0024."),
    ("en", "TLS fingerprint JA3 771,4865-4866-4867-49195-49199,0-23-65281-10-11-35-16,29-23-24,0"),
    ("en", "Ticket INC0012345 escalated; case number 2024-000123."),
    ("en", "Serial number of the certificate: 03:5a:91:0f:2c:77."),
    ("en", "Build ID 20231207105521 from the user agent Firefox/121.0."),
]:
    add(lang, text)

# ---------------------------------------------------------------- e-mail
emails = [
    ("en", "Phishing sent from john.doe@example.com to finance.", "john.doe@example.com"),
    ("en", "Reply-To: billing+urgent@pay-secure.example.net", "billing+urgent@pay-secure.example.net"),
    ("zh", "攻击者邮箱：hacker_2024@163.com，请封禁。", "hacker_2024@163.com"),
    ("zh", "联系人邮箱zhang.san@example.cn。", "zhang.san@example.cn"),
    ("zh", "QQ邮箱 123456789@qq.com 发送了恶意附件", "123456789@qq.com"),
    ("ar", "البريد الإلكتروني للمهاجم: ahmed.ali@example.sa", "ahmed.ali@example.sa"),
    ("ar", "أرسلت الرسالة من support@bank-alert.example.ae إلى الضحايا.", "support@bank-alert.example.ae"),
    ("en", "Contact <Analyst.One@CERT.example.org> for details.", "Analyst.One@CERT.example.org"),
    ("en", "mailto:security@example.co.uk", "security@example.co.uk"),
    ("en", "Registrant email: o'brien@example.ie.", "o'brien@example.ie"),
]
for lang, text, val in emails:
    add(lang, text, ("email", val))
add("en", "Both a.b@example.com and c_d@example.org received it.", ("email", "a.b@example.com"), ("email", "c_d@example.org"))
for lang, text in [
    ("en", "Retina icon logo@2x.png and banner@3x.jpg."),
    ("en", "Decorator @property and handle @threatactor on X."),
    ("en", "git clone ssh://git@ host without domain, user@localhost."),
    ("en", "npm package @scope/name@1.2.3 was trojanised."),
    ("zh", "微博账号 @安全研究员 发布了预警。"),
]:
    add(lang, text)

# ---------------------------------------------------------------- IP addresses
ips = [
    ("en", "C2 server at 203.0.113.45 on port 443.", ["203.0.113.45"]),
    ("en", "Victim workstation 192.168.1.23 beaconed to 198.51.100.7.", ["192.168.1.23", "198.51.100.7"]),
    ("zh", "攻击源IP：45.33.32.156，目标 10.0.0.5。", ["45.33.32.156", "10.0.0.5"]),
    ("zh", "来自2001:db8:85a3::8a2e:370:7334的连接被阻断", ["2001:db8:85a3::8a2e:370:7334"]),
    ("ar", "عنوان IP المهاجم 185.220.101.4 تم حظره.", ["185.220.101.4"]),
    ("ar", "الخادم على العنوان fe80::1ff:fe23:4567:890a داخل الشبكة.", ["fe80::1ff:fe23:4567:890a"]),
    ("en", "Proxy [2001:db8::1]:8080 and host ::ffff:192.0.2.128.", ["2001:db8::1", "::ffff:192.0.2.128"]),
    ("en", "Scan from 8.8.8.8, 1.1.1.1 and 9.9.9.9.", ["8.8.8.8", "1.1.1.1", "9.9.9.9"]),
    ("en", "Home router of the suspect: 81.2.69.160 (per ISP).", ["81.2.69.160"]),
    ("zh", "受害者家庭宽带地址 114.114.114.114", ["114.114.114.114"]),
    ("en", "Subnet 172.16.0.0/12 contains 172.16.5.4.", ["172.16.0.0", "172.16.5.4"]),
    ("ar", "الجهاز ٢ اتصل بالعنوان 2a00:1450:4001:81b::200e", ["2a00:1450:4001:81b::200e"]),
]
for lang, text, vals in ips:
    add(lang, text, *[("ip_address", v) for v in vals])
for lang, text in [
    ("en", "Version 1.2.3.4.5 and build 10.0.19041.1."),
    ("en", "Invalid 256.1.2.3 and 01.02.03.04."),
    ("en", "Time 12:30:45 and MAC 00:1A:2B:3C:4D:5E."),
    ("en", "C++ scope std::vector and a::b."),
    ("zh", "版本号 4.19.0.1 发布于 2024 年。"),
]:
    add(lang, text)

# ---------------------------------------------------------------- mixed lines
add("en", f"Victim Jane (jane.roe@example.com, +44 7911 123457) paid with {spaced(cards[0])} "
    f"from 203.0.113.9; refund to {ib[0]}.",
    ("email", "jane.roe@example.com"), ("phone", "+44 7911 123457"),
    ("payment_card", spaced(cards[0])), ("ip_address", "203.0.113.9"), ("iban", ib[0]))
add("zh", f"受害人信息：身份证{ids[0]}，手机13812345678，邮箱victim@example.cn，登录IP 36.112.0.8。",
    ("national_id", ids[0]), ("phone", "13812345678"), ("email", "victim@example.cn"),
    ("ip_address", "36.112.0.8"))
add("ar", f"بيانات الضحية: الهوية {fmt(eids[0])}، الجوال +971 50 765 4321، الآيبان {ib[4]}.",
    ("national_id", fmt(eids[0])), ("phone", "+971 50 765 4321"), ("iban", ib[4]))
add("en", "Report indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f created 2024-05-01T12:00:00.000Z "
    "observed 1.2.3.4 with sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.",
    ("ip_address", "1.2.3.4"))

# ---------------------------------------------------------------- generated variety
# Chinese mobiles in several layouts, valid ids with random dates, Arabic-Indic digits.
prefixes = ["130", "131", "135", "136", "137", "150", "151", "152", "158", "177", "180", "187", "189", "199"]
layouts = [lambda n: n, lambda n: f"{n[:3]} {n[3:7]} {n[7:]}", lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
           lambda n: f"+86 {n[:3]} {n[3:7]} {n[7:]}", lambda n: f"+86-{n}"]
templates_zh = ["嫌疑人使用的手机号为{}。", "短信发送方：{}", "注册手机：{}，已冻结。", "联系电话{}（已核实）"]
for i, p in enumerate(prefixes):
    n = p + f"{random.randint(0, 99999999):08d}"
    v = layouts[i % len(layouts)](n)
    add("zh", templates_zh[i % len(templates_zh)].format(v), ("phone", v))
regions = ["110101", "120103", "130102", "210102", "310115", "320581", "350203", "440305",
           "500103", "530102", "610113", "640104"]
templates_id = [("zh", "身份证号码：{}"), ("zh", "持证人身份证{}已过期"),
                ("en", "Leaked record: national_id={}"), ("ar", "رقم الهوية {} مسرب")]
for i, r in enumerate(regions):
    y = random.randint(1940, 2008)
    m = random.randint(1, 12)
    d = random.randint(1, 28)
    v = prc(r, f"{y}{m:02d}{d:02d}", f"{random.randint(0, 999):03d}")
    lang, t = templates_id[i % len(templates_id)]
    add(lang, t.format(v), ("national_id", v))
    # and the same id with one digit changed: a hard negative
    k = random.randint(6, 16)
    bad = v[:k] + str((int(v[k]) + 1) % 10) + v[k + 1:]
    if mod11_2(bad[:17]) != bad[17]:
        add(lang, t.format(bad))
sa_mobiles = ["0501234567", "0551234567", "0561234567", "0591234567", "0541234567"]
for i, n in enumerate(sa_mobiles):
    v = ar_digits(n) if i % 2 else f"{n[:3]} {n[3:6]} {n[6:]}"
    add("ar", f"رقم الجوال المستخدم في الاحتيال {v} تم إبلاغ الشركة.", ("phone", v))
for i in range(8):
    body = "4" + "".join(str(random.randint(0, 9)) for _ in range(14))
    v = body + luhn_digit(body)
    shown = spaced(v) if i % 2 else v
    add("en", f"Compromised card #{i + 1}: {shown}", ("payment_card", shown))
    bad = v[:-1] + str((int(v[-1]) + 3) % 10)
    add("en", f"Test vector (invalid) {spaced(bad) if i % 2 else bad}")
for i, (cc, bban) in enumerate([("GB", "NWBK60161331926819"), ("DE", "50010517" + "5407324931"),
                                ("FR", "30006000011234567890189"), ("SA", "10000000123456789012"),
                                ("AE", "0260001015333439201"), ("EG", "0002000156789012345180002"),
                                ("TR", "0006100519786457841326"), ("PL", "109010140000071219812874")]):
    v = iban(cc, bban)
    shown = spaced(v) if i % 2 else v
    lang = ["en", "zh", "ar"][i % 3]
    text = {"en": f"Beneficiary IBAN {shown}.", "zh": f"收款IBAN：{shown}。",
            "ar": f"الآيبان {shown} للمستفيد."}[lang]
    add(lang, text, ("iban", shown))

# ---------------------------------------------------------------- issue 15 item 5: defanged
# forms, Unicode compatibility forms (NFKC), dictionary keys and JSON numbers. Positives and
# hard negatives that only a careless re-fanging or normalisation would report.
add("en", "Phishing kit mails its results to grace.liu[@]corp-mail.cn every night.",
    ("email", "grace.liu[@]corp-mail.cn"))
add("en", "Contact: wang(at)example.cn for the sample.", ("email", "wang(at)example.cn"))
add("en", "Reply-to header held bob [at] example [dot] org in both waves.",
    ("email", "bob [at] example [dot] org"))
add("en", "Operator mailbox zhao[.]lei[@]mail[.]example[.]cn (from the leak).",
    ("email", "zhao[.]lei[@]mail[.]example[.]cn"))
add("en", "Fullwidth evasion in the lure: ｍａｌｌｏｒｙ＠ｅｘａｍｐｌｅ．ｃｏｍ.",
    ("email", "ｍａｌｌｏｒｙ＠ｅｘａｍｐｌｅ．ｃｏｍ"))
add("zh", "受害人邮箱：ｅｖｅ＠corp.cn，已通知。", ("email", "ｅｖｅ＠corp.cn"))
add("zh", "钓鱼邮件发件人 li.na(at)qq.com 冒充人事部门。", ("email", "li.na(at)qq.com"))
add("ar", "البريد المستخدم في الاحتيال ali[at]mail.example.sa حسب البلاغ.",
    ("email", "ali[at]mail.example.sa"))
add("en", "C2 at 45[.]33[.]32[.]158 over 443/tcp.", ("ip_address", "45[.]33[.]32[.]158"))
add("en", "Beacon to hxxp://81[.]2[.]69[.]160/gate.php every 60 s.",
    ("ip_address", "81[.]2[.]69[.]160"))
add("en", "Home router of the victim, 91(.)198(.)174(.)192, was reused.",
    ("ip_address", "91(.)198(.)174(.)192"))
add("en", "Exfiltration to 185[.]220[.]101[.]4:8080 observed.", ("ip_address", "185[.]220[.]101[.]4"))
add("zh", "攻击源ＩＰ：１２３．１２．４５．６７，已封禁。", ("ip_address", "１２３．１２．４５．６７"))
add("ar", "عنوان الضحية 77{.}42{.}9{.}130 في السجل.", ("ip_address", "77{.}42{.}9{.}130"))
add("zh", "联系人手机：＋８６ １３８ ００１３ ８００１。", ("phone", "＋８６ １３８ ００１３ ８００１"))
# hard negatives
add("en", "The regex a(.)b matches any character; see array[.]length in the loader.")
add("en", "Sprite sheet icon[@]2x.png and logo(at)3x.jpg were bundled.")
add("en", "Technique T1059[.]001 (PowerShell) and T1566[.]002 were used.")
add("en", "Agent version 10[.]2[.]3[.]4 is affected.")
add("en", "Mail to admin(at)localhost bounced; meet (at) noon.")
add("en", "Ｔｈｅ ｒｅｐｏｒｔ ｏｆ ２０２４－０１－１５ ｃｏｖｅｒｓ ＣＶＥ－２０２１－４４２２８.")
add("zh", "版本 ４．１９．０．１ 已发布，修复 ＣＶＥ－２０２４－３０９４。")
add("en", "Payload fetched from hxxps://evil[.]example/path and hxxp://cdn(.)example(.)net/a.js.")
add("en", "Ratios 1(.)5 and 2[.]0; build 7[.]1[.]2 of the dropper.")
add("zh", "价格 ￥１３８００，订单号 ＃２０２４－０００１２３。")
add("en", "Ｔｉｃｋｅｔ ＃１２３４５６ closed at １０：３０．")

# JSON objects: keys and numbers are scanned too (scan_object); the value is the key or the
# number as written.
def obj(o, *spans):
    lines.append({"object": o, "lang": "json",
                  "spans": [{"category": c, "value": v} for c, v in spans]})

obj({"type": "x-case", "x_map": {"grace@corp.cn": "victim"}}, ("email", "grace@corp.cn"))
obj({"type": "x-case", "x_victims": {"eve[@]corp.cn": 1, "ｍａｌｌｏｒｙ＠corp.cn": 2}},
    ("email", "eve[@]corp.cn"), ("email", "ｍａｌｌｏｒｙ＠corp.cn"))
obj({"type": "x-case", "x_contacts": {"+86 138 0013 8001": "hotline"}}, ("phone", "+86 138 0013 8001"))
obj({"type": "x-case", "x_seen": {"81.2.69.160": 3}}, ("ip_address", "81.2.69.160"))
obj({"type": "x-case", "x_phone": 8613800138001}, ("phone", "8613800138001"))
obj({"type": "x-case", "x_phone": 447911123456}, ("phone", "447911123456"))
obj({"type": "x-case", "x_mobile": 13800138001}, ("phone", "13800138001"))
obj({"type": "x-case", "x_card": 4111111111111111}, ("payment_card", "4111111111111111"))
obj({"type": "x-case", "x_id": int(ids[1])}, ("national_id", ids[1]))
# hard negatives
obj({"type": "x-case", "x_stats": {"count": 13800, "size": 8613800, "modified_ms": 1733500138001,
                                   "port": 8080, "epoch": 1733500138, "ratio": 0.5}})
obj({"type": "x-case", "x_map": {"T1059.001": "x", "2024-01-15": 5, "CVE-2021-44228": True,
                                 "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f": "ref"}})
obj({"type": "autonomous-system", "number": 4134, "x_asn": 13335, "x_when": 20240115103000})
obj({"type": "x-case", "x_hashes": {"d41d8cd98f00b204e9800998ecf8427e": 12345678901234}})

if __name__ == "__main__":
    for l in lines:
        print(json.dumps(l, ensure_ascii=False))
