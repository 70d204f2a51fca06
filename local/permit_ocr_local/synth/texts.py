"""The words the generator prints beyond a permit's front: what another document says (a permit's back, a
resident ID card, a passport, a driving licence) and what a phone's screen shows around a card. A leaf
module: ``fonts.charset()`` lists these characters for the committed font subsets without importing the
modules that draw them.
"""

from __future__ import annotations

# the holder's notes, as a permit's back prints them (wording ours, in the spirit of the real ones)
NOTES_TITLE = "持证人须知"
NOTES = (
    "一、本证是港澳居民来往内地所持有的旅行证件。",
    "二、本证只限持证人本人使用，不得涂改、转让。",
    "三、持证人应妥善保管本证，遗失应及时报告。",
    "四、持证人在内地停留期间应遵守国家法律法规。",
    "五、本证有效期届满前可向签发机关申请换发。",
    "六、持证人出入境时应主动出示本证，接受查验。",
)
ID_TITLE = "中华人民共和国居民身份证"
ID_LABELS = ("姓名", "性别", "民族", "出生", "住址", "公民身份号码", "签发机关", "有效期限")
ID_WORDS = ("汉", "年", "月", "日", "广东省深圳市福田区华强北路", "号", "深圳市公安局福田分局", "长期")
PASSPORT_WORDS = ("中华人民共和国", "护照", "PASSPORT", "类型/Type", "国家码/Country Code", "护照号/Passport No.",
                  "姓名/Name", "性别/Sex", "出生地点/Place of birth", "出生日期/Date of birth",
                  "签发日期/Date of issue", "有效期至/Date of expiry", "签发机关/Authority",
                  "国家移民管理局", "NIA", "CHN", "广东", "GUANGDONG", "男/M", "女/F")
LICENCE_WORDS = ("中华人民共和国机动车驾驶证", "Driving License of the People's Republic of China", "证号",
                 "姓名", "Name", "性别", "Sex", "国籍", "Nationality", "中国", "住址", "Address",
                 "出生日期", "Date of Birth", "初次领证日期", "Issue Date", "准驾车型", "Class", "有效期限",
                 "Valid Period", "至", "C1", "北京市朝阳区建国路", "北京市公安局公安交通管理局")
UI_WORDS = (
    "分享", "编辑", "收藏", "删除", "更多", "相册", "图片", "今天", "昨天", "下午", "上午", "年", "月", "日",
    "微信", "发送", "按住说话", "好的，我把证件照片发给你", "收到，谢谢", "请核对一下信息",
    "明天下午三点在大厅见", "电话", "地址", "已读", "复印件仅供办理业务使用", "再复印无效",
    "张先生", "李经理", "客服", "证件正面", "证件背面", "原图", "查看原图",
)
DOCUMENT_TEXT = "".join((NOTES_TITLE, *NOTES, ID_TITLE, *ID_LABELS, *ID_WORDS, *PASSPORT_WORDS, *LICENCE_WORDS, "<"))
UI_TEXT = "".join(UI_WORDS)
