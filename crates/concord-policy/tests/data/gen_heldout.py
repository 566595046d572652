#!/usr/bin/env python3
"""Generates pii_heldout.jsonl: a second labelled set, written after the detectors' rules were
frozen and measured once, never tuned against. Formats deliberately differ from
pii_labelled.jsonl (RFC 3966 URIs, defanged addresses, lower-case IBANs, full-width digits, …),
so its scores estimate how the detectors do on text they were not shaped by.
Run: python3 gen_heldout.py > pii_heldout.jsonl
"""
import json
from gen_labelled import mod11_2, luhn_digit, iban, spaced

lines = []

def add(lang, text, *spans):
    for cat, val in spans:
        assert val in text, (text, val)
    lines.append({"text": text, "lang": lang,
                  "spans": [{"category": c, "value": v} for c, v in spans]})

def prc(body):
    return body + mod11_2(body)

# phones
add("en", "Dial +86-10-6552-9988 for the hotline.", ("phone", "+86-10-6552-9988"))
add("zh", "国际格式 0086 138 0013 8000 亦可。", ("phone", "0086 138 0013 8000"))
add("ar", "هاتف المكتب +971-4-331-2345", ("phone", "+971-4-331-2345"))
add("en", "Egypt support line +20 100 123 4567.", ("phone", "+20 100 123 4567"))
add("zh", "联系电话(+86) 139-1234-5678", ("phone", "(+86) 139-1234-5678"))
add("en", "Link tel:+966501234567 in the SMS.", ("phone", "+966501234567"))
add("en", "London desk +44 (0)20 7946 0018.", ("phone", "+44 (0)20 7946 0018"))
add("en", "US format with dots 202.555.0143 in the signature.", ("phone", "202.555.0143"))
add("en", "Call +1-202-555-0143 now.", ("phone", "+1-202-555-0143"))
add("ar", "الرقم ٠٠٩٦٦٥٠١٢٣٤٥٦٧ في الرسالة", ("phone", "٠٠٩٦٦٥٠١٢٣٤٥٦٧"))
add("zh", "固话：0571-87654321；手机：186 5718 0000", ("phone", "0571-87654321"), ("phone", "186 5718 0000"))
add("ar", "للاستفسار اتصل 800 123 4567 مجانا", ("phone", "800 123 4567"))
add("en", "Paris office 01 42 68 53 00, ext. 12", ("phone", "01 42 68 53 00"))
add("en", "Munich +49 (89) 123456-0 switchboard", ("phone", "+49 (89) 123456-0"))
# emails
add("en", "FROM: FIRST.LAST@SUB.EXAMPLE.CO.JP", ("email", "FIRST.LAST@SUB.EXAMPLE.CO.JP"))
add("en", "alias user%tag@example.com forwards", ("email", "user%tag@example.com"))
add("zh", "发件人<li.lei@mail.example.com.cn>", ("email", "li.lei@mail.example.com.cn"))
add("ar", "راسل info@example.org.sa أو admin@example.ae", ("email", "info@example.org.sa"), ("email", "admin@example.ae"))
add("en", "Defanged: bad-guy[@]evil.example and bad[.]guy@evil[.]example", ("email", "bad-guy[@]evil.example"), ("email", "bad[.]guy@evil[.]example"))
# IPs
add("en", "IP:203.0.113.1 blocked", ("ip_address", "203.0.113.1"))
add("en", "Range 198.51.100.1/24 observed", ("ip_address", "198.51.100.1"))
add("en", "Full form 2001:0db8:0000:0000:0000:ff00:0042:8329", ("ip_address", "2001:0db8:0000:0000:0000:ff00:0042:8329"))
add("en", "Defanged C2 203.0.113[.]77 and hxxp://198[.]51[.]100[.]3/", ("ip_address", "203.0.113[.]77"), ("ip_address", "198[.]51[.]100[.]3"))
add("zh", "源地址：61.135.169.121，端口：443", ("ip_address", "61.135.169.121"))
add("ar", "عنوان الخادم 5.42.199.10 خبيث", ("ip_address", "5.42.199.10"))
# cards
add("en", "card 4111-1111-1111-1111 expired", ("payment_card", "4111-1111-1111-1111"))
add("en", "MC 5500 0000 0000 0004 test", ("payment_card", "5500 0000 0000 0004"))
add("en", "Maestro 6759649826438453 seen", ("payment_card", "6759649826438453"))
add("zh", "JCB卡号3566002020360505已冻结", ("payment_card", "3566002020360505"))
add("ar", "رقم البطاقة ٤١١١١١١١١١١١١١١١ مسروق", ("payment_card", "٤١١١١١١١١١١١١١١١"))
add("en", "CVV dump: 4012 8888 8888 1881 / 123", ("payment_card", "4012 8888 8888 1881"))
# PRC ids
a = prc("11010819800514123")
b = prc("44030619931207004")
fw = ''.join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in b)
add("zh", f"|张三|{a}|北京|", ("national_id", a))
add("zh", f"全角身份证号{fw}", ("national_id", fw))
add("en", f'{{"id_card": "{prc("32010219760101031")}"}}', ("national_id", prc("32010219760101031")))
# Emirates
e = "78419871234567"; e += luhn_digit(e)
add("ar", f"الهوية {e[:3]} {e[3:7]} {e[7:14]} {e[14]}", ("national_id", f"{e[:3]} {e[3:7]} {e[7:14]} {e[14]}"))
# IBANs
for cc, bban in [("PS", "PALS000000000400123456702"), ("LB", "099900000001001901229114"),
                 ("IQ", "NBIQ850123456789012"), ("TN", "10006035183598478831"),
                 ("MR", "00020001010000123456753"), ("BR", "00360305000010009795493C1")]:
    v = iban(cc, bban)
    add("en", f"IBAN: {v}", ("iban", v))
v = iban("DE", "37040044" + "0532013000")
add("en", f"lower case {spaced(v).lower()}", ("iban", spaced(v).lower()))
# negatives
for lang, t in [
    ("en", "Phone: N/A; port 3389/tcp; build 22621.2861; KB5034441"),
    ("en", "HRESULT 0x80070005, CVE-2024-3400, MS17-010"),
    ("en", "Loss of $4,111,111,111,111 reported; 1,234,567 records"),
    ("en", "Dated 15.01.2024 and 01/15/2024, Q3 2024."),
    ("en", "AS13335 and ASN 4134 announced 1.1.1.0/24"[:-0] if False else "AS13335 and ASN 4134 peered."),
    ("en", "Luhn-valid but no IIN: 7992739871300000."),
    ("zh", "共计 13800 条记录，涉及 1380013 个账户。"),
    ("ar", "عدد الضحايا ١٣٨٠٠١٣٨٠٠٠ حسب التقديرات"),
    ("en", "File size 4111111111 bytes; offset 5555555555554."),
    ("en", "Invoice INV-4111111111111111-A"),
    ("en", "GUID {12345678-1234-4123-8123-123456789012}"),
    ("en", "Sigma rule id 5f1e2d3c-1234-5678-9abc-def012345678 matched"),
    ("zh", "样本编译于 20231107，大小 3145728 字节"),
    ("en", "Registry value 0x00000001 at HKCU\\\\Software\\\\1380013800"),
    ("en", "Lat/long 24.7136, 46.6753 (Riyadh)"),
]:
    add(lang, t)

for l in lines:
    print(json.dumps(l, ensure_ascii=False))
