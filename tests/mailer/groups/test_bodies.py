"""What the archive keeps of hostile mail (mailer/groups/bodies.py)."""

from __future__ import annotations

from mailer.groups import bodies

NESTED = (
    b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary="i"\r\n\r\n'
    b"--i\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--i\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nVGhlIHRleHQg4pyT\r\n--i--\r\n"
    b'--o\r\nContent-Type: text/plain; name="notes.txt"\r\nContent-Disposition: attachment; filename="notes.txt"\r\n\r\n'
    b"file\r\n--o--\r\n"
)


def test_the_text_part_wins_and_attachments_are_files():
    msg = bodies.parse(NESTED)
    assert bodies.plain_text(msg) == "The text ✓"
    assert [(f.filename, f.content_type, f.data) for f in bodies.attachments(msg)] == [
        ("notes.txt", "text/plain", b"file")
    ]


def test_html_only_mail_becomes_text_without_script_style_or_tags():
    html = "<style>p{}</style><p>One&nbsp;<b>two</b></p><script>evil()</script><div>three &amp; four</div>"
    assert bodies.html_to_text(html) == "One two\n\nthree & four"
    assert bodies.html_to_text("<scr<script>ipt>x</script>").count("<") <= 1  # text, never markup to us


def test_addresses_are_masked_and_file_names_are_only_names():
    text = "Mail priya.shah+x@nhs.example or <sam@gp.example.co.uk>, not @handles"
    assert bodies.mask_addresses(text) == "Mail [address hidden] or <[address hidden]>, not @handles"
    assert bodies.safe_filename("../../etc/passwd") == "passwd"
    assert bodies.safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert bodies.safe_filename('=?utf-8?q?r=C3=A9sum=C3=A9?= "x".pdf') == "résumé _x_.pdf"
    assert bodies.safe_filename(".htaccess") == "htaccess" and bodies.safe_filename("") == "attachment"
    long = bodies.safe_filename("a" * 300 + ".pdf")
    assert len(long) <= 100 and long.endswith(".pdf")


def test_replies_split_from_what_they_quote():
    split = bodies.split_quoted("Yes.\n\nOn Tue, 1 Dec 2026, Priya wrote:\n> Shall we?\n")
    assert split.new == "Yes." and "Shall we?" in split.quoted
    assert bodies.split_quoted("Just a note.") == bodies.Split("Just a note.", "")
