"""A small built-in table of Chinese surnames and given-name characters with their pinyin (no tones).

Only characters with one common reading are listed, so the romanization is unambiguous.
"""

from __future__ import annotations

import random

SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "WANG"), ("李", "LI"), ("张", "ZHANG"), ("刘", "LIU"), ("陈", "CHEN"), ("杨", "YANG"),
    ("黄", "HUANG"), ("赵", "ZHAO"), ("吴", "WU"), ("周", "ZHOU"), ("徐", "XU"), ("孙", "SUN"),
    ("马", "MA"), ("朱", "ZHU"), ("胡", "HU"), ("林", "LIN"), ("郭", "GUO"), ("何", "HE"),
    ("高", "GAO"), ("罗", "LUO"), ("郑", "ZHENG"), ("梁", "LIANG"), ("谢", "XIE"), ("宋", "SONG"),
    ("唐", "TANG"), ("许", "XU"), ("邓", "DENG"), ("冯", "FENG"), ("韩", "HAN"), ("曹", "CAO"),
    ("彭", "PENG"), ("潘", "PAN"), ("袁", "YUAN"), ("蔡", "CAI"), ("蒋", "JIANG"), ("余", "YU"),
    ("叶", "YE"), ("苏", "SU"), ("吕", "LV"), ("欧阳", "OUYANG"), ("司马", "SIMA"),
)

GIVEN: tuple[tuple[str, str], ...] = (
    ("伟", "WEI"), ("芳", "FANG"), ("娜", "NA"), ("敏", "MIN"), ("静", "JING"), ("丽", "LI"),
    ("强", "QIANG"), ("磊", "LEI"), ("洋", "YANG"), ("艳", "YAN"), ("勇", "YONG"), ("杰", "JIE"),
    ("娟", "JUAN"), ("涛", "TAO"), ("明", "MING"), ("超", "CHAO"), ("秀", "XIU"), ("霞", "XIA"),
    ("平", "PING"), ("刚", "GANG"), ("桂", "GUI"), ("英", "YING"), ("华", "HUA"), ("文", "WEN"),
    ("玉", "YU"), ("兰", "LAN"), ("成", "CHENG"), ("建", "JIAN"), ("国", "GUO"), ("志", "ZHI"),
    ("嘉", "JIA"), ("欣", "XIN"), ("婷", "TING"), ("浩", "HAO"), ("宇", "YU"), ("轩", "XUAN"),
    ("晨", "CHEN"), ("思", "SI"), ("雨", "YU"), ("博", "BO"), ("诗", "SHI"), ("梓", "ZI"),
    ("俊", "JUN"), ("家", "JIA"), ("伦", "LUN"), ("美", "MEI"), ("琪", "QI"), ("德", "DE"),
    ("永", "YONG"), ("安", "AN"), ("心", "XIN"), ("慧", "HUI"), ("子", "ZI"), ("海", "HAI"),
    ("东", "DONG"), ("南", "NAN"), ("春", "CHUN"), ("秋", "QIU"), ("雪", "XUE"), ("龙", "LONG"),
)


def random_name(rng: random.Random) -> tuple[str, str]:
    """(Chinese name, ``SURNAME,GIVENNAME`` in upper-case pinyin with the given syllables run together)."""
    sur_cn, sur_en = rng.choice(SURNAMES)
    given = [rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2)))]
    cn = sur_cn + "".join(c for c, _ in given)
    en = sur_en + "," + "".join(p for _, p in given)
    return cn, en
