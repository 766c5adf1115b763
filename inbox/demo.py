# ruff: noqa: RUF001 -- the demo customers write in Russian, Ukrainian and Persian: those letters are meant.
"""Demo data for a first start: teams, operators, customers with history on several channels, a bot."""

from __future__ import annotations

from typing import TypeAlias

from django.db import transaction

from inbox import outbound, replies, services
from inbox.models import Channel, Conversation, Operator, Team
from inbox.transport import InboundMessage

# An example question or known out-of-scope message: English text, or (language, text).
Question: TypeAlias = str | tuple[str, str]

DEMO_PASSWORD = "parley-demo"  # noqa: S105 - printed at start, for the demo only

CUSTOMERS = [
    # (name, [(medium, address, text), ...], operator reply)
    (
        "Alice Müller",
        [
            ("sms", "+15005550006", "Hi, my order #1001 arrived broken"),
            ("whatsapp", "+1 500-555-0006", "Here is a photo of the box, can you send a new one?"),
        ],
        "Sorry to hear that, Alice! A replacement is on its way.",
    ),
    (
        "Bruno Costa",
        [("email", "bruno@customer.test", "Can I change the delivery address of order #1002?")],
        "Yes, reply with the new address and we will update it.",
    ),
    ("Chen Wei", [("telegram", "700000001", "Do you ship to Singapore?")], ""),
    ("Dana Levi", [("messenger", "6100000000000002", "I want to upgrade to the business plan")], ""),
    (
        "Emre Yilmaz",
        [
            ("sms", "+15005550010", "Is the store open on Sunday?"),
            ("email", "emre@customer.test", "Following up on my SMS about Sunday opening hours"),
        ],
        "",
    ),
    ("Farah Ahmadi", [("viber", "01234567890A=", "سلام، سفارش من کی می‌رسد؟")], ""),
    ("Gleb Ivanov", [("webchat", "visitor-42", "Здравствуйте! Где мой заказ?")], ""),
]


# Articles: (title, tags, answer, example questions). A question is English unless it is given
# as (language, text).
ARTICLES: list[tuple[str, list[str], str, list[Question]]] = [
    (
        "Delivery times",
        ["orders", "delivery"],
        "Orders ship within one working day. Delivery takes 2-4 working days in the US and 5-10 working days "
        "abroad; express delivery (1-2 working days, US only) can be chosen at checkout.",
        [
            "How long does delivery take?",
            "When will my order arrive?",
            "How long does shipping take?",
            "How many days until my parcel arrives?",
            "Do you ship to Singapore?",
            "Do you deliver abroad?",
            "What is the delivery time to Canada?",
            "How fast is your shipping?",
            "If I order today, when will I get it?",
            "Do you offer express delivery?",
            "How soon do you ship orders?",
            "Is next-day delivery possible?",
            "How long does international shipping take?",
            "Can it be delivered before Friday?",
            "How long is delivery to Germany?",
            "What are your delivery times?",
            "How many working days does delivery take?",
            "When does my order ship?",
            "Delivery time to the UK?",
            "How long will shipping to Australia take?",
            "How long until my order is delivered?",
            "What's the usual delivery time?",
            "Will my order arrive by the weekend?",
            "How quickly do you deliver?",
            "Do you ship worldwide?",
            "Do you deliver to Mexico?",
            ("ru", "Сколько идёт доставка?"),
            ("ru", "Когда придёт мой заказ?"),
            ("uk", "Скільки триває доставка?"),
            ("uk", "Скільки днів йде доставка?"),
            ("fa", "سفارش من کی می‌رسد؟"),
        ],
    ),
    (
        "Tracking your order",
        ["orders", "delivery"],
        "As soon as your order ships we email you a tracking link; you also find it under My account → Orders. "
        "Tracking can take up to 24 hours to show the first scan.",
        [
            "Where is my order?",
            "How can I track my parcel?",
            "Can you send me the tracking number?",
            "My tracking link doesn't work",
            "Where is my package right now?",
            "Has my parcel shipped yet?",
            "I haven't received a tracking email",
            "The tracking page says no information available",
            "What's the status of my order #1042?",
            "Which courier has my parcel?",
            "My order still shows as processing",
            "Is my order on its way?",
            "I can't find my tracking code",
            "How do I check where my parcel is?",
            "Where is my parcel?",
            "Track my order",
            "Where's my package?",
            "Tracking number for my order please",
            "How do I track my order?",
            "My parcel tracking hasn't updated in days",
            "Can I track my package?",
            "Order tracking doesn't show anything",
            "Where can I see my tracking?",
            "Is there a tracking link for my order?",
            "What is my tracking number?",
            "Where is my order #2231?",
            ("ru", "Где мой заказ?"),
            ("ru", "Как отследить посылку?"),
            ("uk", "Де моє замовлення?"),
            ("uk", "Як відстежити посилку?"),
            ("fa", "سفارشم کجاست؟"),
        ],
    ),
    (
        "Changing the delivery address",
        ["orders", "delivery"],
        "Until an order ships you can change its address: reply with the order number and the new address, "
        "and we will update it. Once it has shipped, use the courier's link in the tracking email to redirect it.",
        [
            "Can I change the delivery address?",
            "I moved, can you send it to another address?",
            "I entered the wrong address",
            "How do I update my shipping address?",
            "Please change the address on order #1002",
            "Can you send it to my office address instead?",
            "I made a typo in my street name",
            "Can I change the postcode on my order?",
            "Wrong apartment number on my order, can you fix it?",
            "Can I redirect my parcel to a different address?",
            "Please ship it to my parents' house instead",
            "Can I edit the address after ordering?",
            "Change of shipping address please",
            "The address on my order is incorrect",
            "Change my delivery address",
            "I need to change the shipping address",
            "Update the address for my order",
            "Can the parcel go to a new address?",
            "I gave you my old address",
            "Can I change the address where my order goes?",
            "Deliver to a different address please",
            "The delivery address is wrong",
            "How do I change the address of my order?",
            "Can I add a flat number to my address?",
            "Send my order to my new address",
            "I want to change my address",
            ("ru", "Можно изменить адрес доставки?"),
            ("ru", "Я указал неправильный адрес"),
            ("uk", "Чи можна змінити адресу доставки?"),
            ("uk", "Я вказав неправильну адресу"),
        ],
    ),
    (
        "Returns and refunds",
        ["returns"],
        "You can return anything within 30 days: start a return under My account → Orders to get a free return "
        "label. We refund to the original payment method within 5 working days of receiving the parcel.",
        [
            "How do I return an item?",
            "Can I get a refund?",
            "What is your return policy?",
            "I want to send this back",
            "When will my refund come through?",
            "The shoes don't fit, can I return them?",
            "When will I get my money back for the return?",
            "Do I have to pay for return shipping?",
            "Can I exchange it for a different size instead of a refund?",
            "I returned my order two weeks ago but still no refund",
            "How many days do I have to return something?",
            "Where do I get a return label?",
            "I changed my mind, can I return it?",
            "Is the refund paid back to my card?",
            "I want a refund",
            "How do I return my order?",
            "Refund please",
            "Can I return a sale item?",
            "Where is my refund?",
            "Return an item I don't like",
            "What is the return window?",
            "How do returns work?",
            "I want to return the dress",
            "How do I get a refund for my order?",
            "Is return shipping free?",
            "Can I return it without the box?",
            ("ru", "Как вернуть товар?"),
            ("ru", "Когда мне вернут деньги?"),
            ("uk", "Як повернути товар?"),
            ("uk", "Коли мені повернуть гроші?"),
            ("fa", "چطور کالا را پس بدهم؟"),
        ],
    ),
    (
        "Damaged, wrong or missing items",
        ["orders", "returns"],
        "Sorry about that! Send us a photo of the item and the box (or of what is wrong or missing) with your "
        "order number, and we will ship a replacement at once. You do not need to send anything back.",
        [
            "My order arrived broken",
            "The item is damaged",
            "The box was crushed and the product is broken",
            "The screen is cracked",
            "Something is missing from my package",
            "I received the wrong item",
            "The parcel arrived wet and the contents are ruined",
            "One of the glasses was shattered",
            "The product is faulty out of the box",
            "It arrived with a big scratch on it",
            "You sent me the wrong colour",
            "The item is faulty",
            "Part of my order is damaged",
            "The packaging was torn open and the item is dented",
            "The product arrived damaged",
            "My item is broken",
            "I got a damaged parcel",
            "An item is missing from my order",
            "You sent the wrong size",
            "It came broken",
            "The lamp arrived smashed",
            "The order came with a broken part",
            "My package was damaged in transit",
            "I received a defective product",
            "Items missing from my parcel",
            "The mug was broken when I opened the box",
            ("ru", "Товар пришёл сломанный"),
            ("ru", "Посылка пришла повреждённой"),
            ("uk", "Товар прийшов зламаний"),
            ("uk", "Посилка прийшла пошкоджена"),
        ],
    ),
    (
        "Payment methods",
        ["payments"],
        "We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay, and bank transfer for "
        "business orders. If a card is declined, check the billing address or try another method.",
        [
            "What payment methods do you accept?",
            "Can I pay with PayPal?",
            "Do you take credit cards?",
            "Can I pay by bank transfer?",
            "Is Apple Pay accepted?",
            "Can I pay with Revolut?",
            "My card was declined",
            "Do you accept American Express?",
            "Can I pay in instalments?",
            "Can I use Google Pay?",
            "Which cards can I use?",
            "Payment failed at checkout",
            "Can I pay with a debit card?",
            "Do you accept Klarna?",
            "How can I pay?",
            "Do you accept Visa?",
            "Can I pay with Mastercard?",
            "Why was my payment declined?",
            "Which payment options do you have?",
            "Do you take PayPal?",
            "Can I pay by card?",
            "My payment didn't go through",
            "Do you accept cash?",
            "Is paying by bank transfer possible?",
            "Can I pay later?",
            "What payment options are there?",
            ("ru", "Какие способы оплаты у вас есть?"),
            ("ru", "Можно оплатить картой?"),
            ("uk", "Які способи оплати у вас є?"),
            ("uk", "Чи можна оплатити карткою?"),
            ("fa", "چه روش‌های پرداختی دارید؟"),
        ],
    ),
    (
        "Invoices and receipts",
        ["payments", "billing"],
        "Every order's invoice is a PDF under My account → Orders → Invoice. To add a company name or VAT "
        "number, enter them under My account → Billing details and download the invoice again.",
        [
            "Can I get an invoice?",
            "I need a receipt for my order",
            "Where can I download my invoice?",
            "Can you add my company name to the invoice?",
            "I need a VAT invoice",
            "Please send me a copy of the receipt",
            "The invoice has the wrong billing address",
            "Can I get an invoice with our tax ID?",
            "Where do I find my invoices?",
            "I lost my receipt",
            "Can you resend the invoice by email?",
            "Do you issue invoices for companies?",
            "I need an invoice for my accountant",
            "How do I get a PDF invoice?",
            "Send me the invoice",
            "Where is my invoice?",
            "Invoice for order #1042 please",
            "Can I have a receipt?",
            "I need an invoice with my company details",
            "How do I download the receipt?",
            "Can you change the name on my invoice?",
            "I didn't get an invoice",
            "Can I get the invoice in PDF?",
            "Where are my receipts?",
            "Please email me the invoice",
            "Invoice with VAT number please",
            ("ru", "Мне нужен счёт-фактура"),
            ("ru", "Пришлите, пожалуйста, чек"),
            ("uk", "Мені потрібен рахунок-фактура"),
            ("uk", "Надішліть, будь ласка, чек"),
        ],
    ),
    (
        "Opening hours",
        ["store"],
        "Our store is open Monday to Saturday 9:00-19:00 and Sunday 10:00-16:00, and closed on public holidays. "
        "This chat answers around the clock; our team replies during opening hours.",
        [
            "Is the store open on Sunday?",
            "What are your opening hours?",
            "When do you close today?",
            "What time do you open?",
            "Are you open on public holidays?",
            "Are you open on Saturday?",
            "What are your hours?",
            "When is the shop open?",
            "Until what time is support available?",
            "Are you open now?",
            "What time does the store close on weekdays?",
            "Is the shop open on Christmas Eve?",
            "Can I visit your store in the evening?",
            "When can I come to the shop?",
            "When are you open?",
            "Opening hours on Sunday?",
            "What time do you close?",
            "Is the shop open today?",
            "Are you open at the weekend?",
            "What are the store hours?",
            "Are you closed on Monday?",
            "Store opening times?",
            "What time does the shop open on Saturday?",
            "How late are you open?",
            "Are you open tomorrow?",
            "What are your weekend hours?",
            ("ru", "Во сколько вы открываетесь?"),
            ("ru", "Вы работаете в воскресенье?"),
            ("uk", "О котрій ви відчиняєтесь?"),
            ("uk", "Ви працюєте в неділю?"),
        ],
    ),
    (
        "Upgrading your plan",
        ["billing", "plans"],
        "You can upgrade at any time under Settings → Billing → Change plan; the new plan starts at once and "
        "the difference is charged pro rata for the rest of the billing period.",
        [
            "I want to upgrade to the business plan",
            "How do I upgrade my subscription?",
            "How can I upgrade my plan?",
            "What does the premium plan include?",
            "Can I switch to the yearly plan?",
            "How much is the business plan?",
            "I need more users on my plan",
            "Upgrade my account please",
            "Can I move to a bigger plan?",
            "What's the difference between the basic and pro plans?",
            "Will I pay the full price if I upgrade mid-month?",
            "How do I get more storage?",
            "Can I try the pro plan first?",
            "I'd like to go premium",
            "Upgrade my plan",
            "How do I upgrade?",
            "Can I upgrade to pro?",
            "I want the premium plan",
            "How do I switch to the business plan?",
            "Upgrade to the yearly subscription",
            "How much does upgrading cost?",
            "Can I add more seats to my plan?",
            "Move me to the pro plan",
            "Which plan should I upgrade to?",
            "I want to upgrade to a higher plan",
            "Is there a plan with more features?",
            ("ru", "Как перейти на бизнес-тариф?"),
            ("ru", "Хочу улучшить тариф"),
            ("uk", "Як перейти на бізнес-тариф?"),
            ("uk", "Хочу покращити тариф"),
        ],
    ),
    (
        "Cancelling your plan",
        ["billing", "plans"],
        "Cancel under Settings → Billing → Cancel plan. Your plan stays active until the end of the period you "
        "paid for, you are not charged again, and your data is kept for 90 days in case you come back.",
        [
            "How do I cancel my subscription?",
            "I want to cancel my plan",
            "Cancel my membership",
            "How do I stop the automatic renewal?",
            "Can I cancel and go back to the free plan?",
            "I don't want to be charged next month",
            "How do I cancel and close my account?",
            "Can I pause my subscription?",
            "Stop billing me please",
            "What happens to my data if I cancel?",
            "How do I turn off auto-renew for my subscription?",
            "I'd like to end my subscription",
            "Unsubscribe me from the paid subscription",
            "How to cancel the plan before the trial ends?",
            "Cancel my subscription",
            "How do I cancel?",
            "I want to cancel my subscription",
            "Cancel my plan please",
            "How can I stop my subscription?",
            "Please don't renew my plan",
            "How do I delete my account?",
            "I want to stop paying for my subscription",
            "Cancel auto-renewal",
            "Can I cancel anytime?",
            "How do I cancel the plan?",
            "I no longer need my subscription",
            ("ru", "Как отменить подписку?"),
            ("ru", "Хочу отменить подписку"),
            ("uk", "Як скасувати підписку?"),
            ("uk", "Хочу скасувати підписку"),
        ],
    ),
    (
        "Resetting your password",
        ["account"],
        "Click “Forgot password?” on the sign-in page and we email you a link that works for one hour. No "
        "email? Check your spam folder, or sign in with the address you used when you ordered.",
        [
            "I forgot my password",
            "How do I reset my password?",
            "I can't log in to my account",
            "The password reset email never arrived",
            "My account is locked",
            "How do I change my password?",
            "The reset link has expired",
            "I can't sign in",
            "Login doesn't work",
            "I don't remember my password",
            "How do I recover my account password?",
            "It says my password is wrong",
            "Reset password please",
            "I changed my email and now I can't log in",
            "Forgot password",
            "Reset my password",
            "I can't remember my password",
            "Password reset not working",
            "I can't log in",
            "How do I log in if I forgot my password?",
            "My password doesn't work",
            "Locked out of my account",
            "I need a new password",
            "Can't sign in to my account",
            "The reset password link doesn't work",
            "How can I change my login password?",
            ("ru", "Я забыл пароль"),
            ("ru", "Не могу войти в аккаунт"),
            ("uk", "Я забув пароль"),
            ("uk", "Не можу увійти в акаунт"),
            ("fa", "رمز عبورم را فراموش کرده‌ام"),
        ],
    ),
    (
        "Discount codes",
        ["payments", "promotions"],
        "Enter the code in the “Discount code” field of the cart before you pay; one code per order. A code "
        "that says invalid may have expired or may not cover sale items. Newsletter subscribers get 10 % off "
        "their first order.",
        [
            "My discount code doesn't work",
            "How do I use a promo code?",
            "Where do I enter the coupon?",
            "The voucher says it is invalid",
            "Do you have any discounts right now?",
            "I forgot to apply my coupon code",
            "Can I combine two discount codes?",
            "Is there a student discount?",
            "The promo code expired yesterday, can I still use it?",
            "Where can I find a discount code?",
            "Do you have a newsletter discount?",
            "The sale price was not applied",
            "Can I get a discount on my next order?",
            "My coupon didn't apply at checkout",
            "My promo code doesn't work",
            "Discount code not working",
            "How do I apply a discount code?",
            "Where do I put my promo code?",
            "Is there a discount code?",
            "My coupon is invalid",
            "Can I use a coupon on sale items?",
            "Do you have a promo code for first orders?",
            "Coupon code not accepted",
            "How do I redeem a voucher?",
            "Any discounts for students?",
            "The discount wasn't applied to my order",
            ("ru", "Промокод не работает"),
            ("ru", "У вас есть скидки?"),
            ("uk", "Промокод не працює"),
            ("uk", "Чи є у вас знижки?"),
        ],
    ),
]

# Messages the bot must hand to people rather than answer: greetings and thanks with no question,
# complaints that need a person, and questions the knowledge base does not cover. Calibration
# uses them as negatives (a person request is caught by a rule before the knowledge base).
KNOWN_OUT_OF_SCOPE: list[Question] = [
    "Hi",
    "Hello there",
    "Good morning!",
    "Good evening",
    "Hey, how are you?",
    "Hello, is anybody there?",
    "Hi, I have a question",
    "Good afternoon, quick question",
    "Can you hear me?",
    "Thanks a lot!",
    "Thank you, that's all",
    "ok",
    "Yes",
    "No thanks",
    "Hm",
    "Great, bye",
    "👍",
    "lol",
    "asdfgh",
    "Testing, testing",
    "Happy new year!",
    "Nice website!",
    "I love your products, keep it up",
    "Do you sell gift cards in Brazil?",
    "My cat is sick, what should I do?",
    "Tell me a joke",
    "Knock knock",
    "Why did the chicken cross the road?",
    "Sing me a song",
    "Can you write me a poem about cheese?",
    "What's the weather like tomorrow?",
    "Is it going to rain in London?",
    "Who won the football match last night?",
    "Can you recommend a good pizza place?",
    "Recommend me a good movie",
    "What is the meaning of life?",
    "Are you a robot?",
    "What are you?",
    "How old are you?",
    "What's your favourite colour?",
    "Do you believe in aliens?",
    "Why is the sky blue?",
    "How tall is Mount Everest?",
    "What's the capital of Australia?",
    "Who is the president of France?",
    "What is bitcoin worth today?",
    "How many calories are in a banana?",
    "Which is better, iPhone or Android?",
    "My phone battery drains fast, any tips?",
    "How do I fix my car's engine?",
    "Can you repair my grandmother's sewing machine?",
    "How do I cook pasta?",
    "What's 2 plus 2?",
    "Can you help me with my maths homework?",
    "Translate 'good night' into French",
    "How do I learn to play the guitar?",
    "Where can I renew my passport?",
    "I need a doctor's appointment",
    "I need a lawyer",
    "My neighbour is too loud at night",
    "Can you lend me some money?",
    "Where can I buy concert tickets?",
    "Do you sell cars?",
    "Can I bring my dog to your office?",
    "Send me a picture of a cat",
    "I'm bored",
    "Can we meet for coffee?",
    "Is this WhatsApp number real?",
    "I am very angry, this is the third time I write to you",
    "This is unacceptable, I will post about you everywhere",
    "Your service is terrible",
    "You guys are the worst",
    "I've been waiting for hours and nobody replies",
    "I want to file a formal complaint about your courier's behaviour",
    "Your courier was rude to my mother",
    "I'm going to report you to consumer protection",
    "I want a copy of all the personal data you hold about me",
    "There's a typo on your homepage",
    "Who designed your logo?",
    "Are you hiring?",
    "Do you have a job opening for a warehouse worker?",
    "Is your company hiring developers?",
    "Can I do my internship with you?",
    "I'd like to propose a business partnership",
    "We would like to resell your products in Poland",
    "I'd like to advertise on your website",
    "I'm a journalist writing about online shops, can we do an interview?",
    "Can you donate to our charity?",
    "Do you sponsor local football teams?",
    "Hey",
    "Hello",
    "Hi there!",
    "Good night",
    "Morning!",
    "Thanks",
    "Thank you so much",
    "Cheers",
    "Okay thanks",
    "Bye",
    "See you",
    "Sure",
    "Cool",
    "Nice",
    "Perfect",
    "Hmm ok",
    "?",
    "...",
    "😂",
    "hahaha",
    "What's your name?",
    "Are you a real bot?",
    "Do you dream?",
    "What's the time in Tokyo?",
    "Who is the best football player ever?",
    "What's the best pizza topping?",
    "Do you like cats or dogs?",
    "How far is the moon?",
    "What's the population of Canada?",
    "Who wrote Hamlet?",
    "How do I make sourdough bread?",
    "How do I get rid of a cold?",
    "Can you book me a taxi?",
    "Book a table for two tonight",
    "Can you call my mum?",
    "I lost my keys",
    "My car won't start",
    "My wifi is slow at home",
    "How do I install Windows?",
    "Can you hack my ex's Instagram?",
    "Give me the lottery numbers",
    "Write my essay for me",
    "What should I name my dog?",
    "Can you fix my bicycle?",
    "Is coffee bad for you?",
    "Where is the nearest hospital?",
    "I'm feeling sad today",
    "I love you",
    "Marry me",
    "Do you sell furniture?",
    "Do you sell groceries?",
    "Do you rent bikes?",
    "Can I pay my electricity bill here?",
    "Is this the tax office?",
    "I want to sell you my old sofa",
    "My order from another shop is late",
    "Can you recommend a hotel in Rome?",
    "What's a good birthday present?",
    "I'm from the city council",
    "We are doing a survey, can you answer some questions?",
    "Please donate to my fundraiser",
    "Click this link to win a prize",
    "Buy cheap followers now",
    "Congratulations, you have won an iPhone",
    "SEO services for your website, cheap",
    "I'm disappointed, I expected better",
    "I'm really upset with how I was treated",
    "I want compensation for my wasted time",
    "This is a scam",
    "I'll never buy from you again",
    "Why are you so slow?",
    "Nobody ever answers here",
    ("ru", "Привет"),
    ("ru", "Спасибо большое"),
    ("ru", "Расскажи анекдот"),
    ("ru", "Какая завтра погода?"),
    ("ru", "Вы продаёте подарочные карты в Бразилии?"),
    ("ru", "Моя кошка заболела, что делать?"),
    ("ru", "Я очень недоволен вашим сервисом"),
    ("ru", "Вы ищете сотрудников?"),
    ("uk", "Привіт"),
    ("uk", "Дякую"),
    ("uk", "Яка завтра погода?"),
    ("uk", "Розкажи анекдот"),
    ("uk", "Мій кіт захворів"),
    ("uk", "Ви продаєте подарункові картки?"),
    ("uk", "Я дуже незадоволений вашим сервісом"),
    ("fa", "سلام"),
    ("fa", "ممنون"),
    ("fa", "هوا فردا چطور است؟"),
]

# Saved replies: (title, team name or None for every team, text).
SAVED_REPLIES = [
    (
        "Greeting",
        None,
        "Hi {customer_first_name}, thanks for getting in touch! I'm {operator_name} from the {team} team. How can I help?",
    ),
    (
        "Closing",
        None,
        "Is there anything else I can help you with? If not, have a great day, {customer_first_name}!",
    ),
    (
        "Refund policy",
        "Support",
        "You can return any item within 30 days of delivery for a full refund. Reply with your order number and "
        "we will email you a prepaid return label. The refund reaches your account within 5 working days of "
        "our receiving the item.",
    ),
    (
        "Business plan",
        "Sales",
        "The business plan adds shared inboxes, reports and priority support. I can set up a 14-day trial for "
        "you, {customer_first_name}: which email address should I use?",
    ),
]


def load_saved_replies() -> None:
    """The demo's saved replies; those there already (by team and title) are left as they are."""
    from inbox.models import SavedReply

    for title, team_name, text in SAVED_REPLIES:
        team = Team.objects.filter(name=team_name).first() if team_name else None
        if team_name and team is None:
            continue
        if not SavedReply.objects.filter(team=team, title__iexact=title).exists():
            replies.create_saved_reply(title=title, text=text, team=team, by=None)


# Simulated channels on which the demo's bot answers first (the seeded conversations stay with people).
BOT_MEDIUMS = ("sms", "whatsapp", "webchat")


def _question(item: Question) -> tuple[str, str]:
    return ("en", item) if isinstance(item, str) else item


def load_knowledge_base() -> None:
    """A support knowledge base large enough for ``bot calibrate`` to find an operating point.

    Calibration wants a Wilson lower bound of 97 % precision on held-out folds, for every language
    with enough data of its own: even a retriever that is never wrong needs some 150 example
    questions and 80 known out-of-scope messages for that, and real ones err, so English has about
    twice as many.
    """
    from inbox.triage.models import Article, ExampleQuestion, KnownOutOfScope

    for title, tags, answer, questions in ARTICLES:
        article = Article.objects.create(title=title, answer=answer, language="en", tags=tags)
        ExampleQuestion.objects.bulk_create(
            [
                ExampleQuestion(article=article, text=text, language=language)
                for language, text in map(_question, questions)
            ]
        )
    KnownOutOfScope.objects.bulk_create(
        [
            KnownOutOfScope(text=text, language=language, source=KnownOutOfScope.Source.MANUAL)
            for language, text in map(_question, KNOWN_OUT_OF_SCOPE)
        ]
    )


@transaction.atomic
def load_demo() -> bool:
    """Create the demo once; returns False when operators exist already."""
    from connectors.simulator import simulated_channel

    if Operator.objects.exists():
        return False
    support = Team.objects.create(name="Support")
    sales = Team.objects.create(name="Sales")
    Operator.objects.create_superuser("admin", "admin@example.test", DEMO_PASSWORD, display_name="Ada Admin")
    operators = {}
    for username, name, teams in [
        ("alice", "Alice Operator", [support]),
        ("bob", "Bob Operator", [support]),
        ("carol", "Carol Sales", [sales, support]),
    ]:
        operator = Operator.objects.create_user(username, f"{username}@example.test", DEMO_PASSWORD, display_name=name)
        operator.teams.set(teams)
        operators[username] = operator
    channels: dict[str, Channel] = {}
    for medium in ["sms", "whatsapp", "email", "telegram", "viber", "webchat"]:
        channels[medium] = simulated_channel(medium)
    channels["messenger"] = simulated_channel("messenger")
    channels["messenger"].team = sales
    channels["messenger"].save(update_fields=["team"])
    for n, (name, messages, answer) in enumerate(CUSTOMERS):
        message = None
        for i, (medium, address, text) in enumerate(messages):
            message = services.receive_message(
                channel=channels[medium],
                inbound=InboundMessage(provider_id=f"demo-{n}-{i}", address=address, text=text, name=name),
            )
        assert message is not None  # noqa: S101
        conversation = message.conversation
        if answer:
            outbound.reply(conversation=conversation, text=answer, by=operators["alice"])
        if n == 1:
            services.resolve_conversation(conversation=conversation, by=operators["alice"])
        if n == 3:
            services.set_priority(conversation=conversation, priority=Conversation.Priority.HIGH, by=None)
    # After the seeded conversations, which stay with people: a new customer on these meets the bot.
    Channel.objects.filter(pk__in=[channels[medium].pk for medium in BOT_MEDIUMS]).update(bot_enabled=True)
    # The real website chat widget, to try on Parley's own page (/webchat/try/).
    from connectors.webchat.views import demo_origins

    services.create_channel(
        kind="webchat",
        name="Website chat",
        team=support,
        channel_settings={"allowed_origins": " ".join(demo_origins())},
        bot_enabled=True,
    )
    load_knowledge_base()
    load_saved_replies()
    return True
