"""Vocabulary of the demo world: people's names, product names, ticket subjects.

Plain data, kept apart from the simulation so that the generator reads as behaviour.
Only reserved example domains (RFC 2606) are used for e-mail addresses.
"""

from __future__ import annotations

# first and last names by naming region; a customer's region follows their country
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
        "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
        "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony",
        "Betty", "Mark", "Emily", "Steven", "Olivia", "Andrew", "Chloe", "Joshua", "Grace",
        "Ryan", "Hannah", "Jacob", "Amelia", "Oliver", "Sophie", "Liam", "Ava", "Noah", "Mia",
        "Ethan", "Ella", "Lucas", "Zoe", "Jack", "Ruby",
    ),
    "de": (
        "Lukas", "Anna", "Jonas", "Lena", "Leon", "Laura", "Finn", "Julia", "Paul", "Lea",
        "Felix", "Marie", "Maximilian", "Sophie", "Tim", "Katharina", "Jan", "Sarah", "Niklas",
        "Johanna", "Tobias", "Clara", "Moritz", "Hannah", "Sebastian", "Emma",
    ),
    "fr": (
        "Louis", "Camille", "Hugo", "Manon", "Arthur", "Chloé", "Jules", "Léa", "Gabriel",
        "Inès", "Raphaël", "Jade", "Adam", "Louise", "Nathan", "Alice", "Théo", "Zoé",
    ),
    "nl": (
        "Daan", "Sanne", "Sem", "Fleur", "Bram", "Lotte", "Lars", "Iris", "Thijs", "Femke",
        "Ruben", "Anouk", "Jesse", "Eva", "Stijn", "Noor",
    ),
    "es": (
        "Hugo", "Lucía", "Pablo", "Sofía", "Alejandro", "Martina", "Álvaro", "María", "Mateo",
        "Paula", "Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Davide",
    ),
    "zh": (
        "Wei", "Fang", "Jing", "Lei", "Min", "Yan", "Hao", "Xin", "Yu", "Li", "Jun", "Ting",
        "Chen", "Ying", "Qiang", "Mei",
    ),
    "ja": (
        "Haruto", "Yui", "Sota", "Hina", "Yuto", "Aoi", "Riku", "Sakura", "Ren", "Mio",
        "Kaito", "Yuna", "Takumi", "Emi", "Kenji", "Naomi",
    ),
}

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
        "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White",
        "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
        "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
        "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart",
        "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper", "Patel", "Nguyen",
    ),
    "de": (
        "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
        "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange",
    ),
    "fr": (
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
        "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Fournier",
    ),
    "nl": (
        "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
        "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos",
    ),
    "es": (
        "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez",
        "Pérez", "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo",
    ),
    "zh": (
        "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu",
        "Sun", "Ma", "Zhu",
    ),
    "ja": (
        "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
        "Kobayashi", "Kato", "Yoshida", "Yamada",
    ),
}

CUSTOMER_DOMAINS = ("example.com", "example.org")
# people who write to support without being customers get another reserved domain,
# so that they can never match a customer by accident
VISITOR_DOMAIN = "example.net"

PRODUCT_CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # category: (sku code, nouns)
    "Office": ("OFF", ("Desk Organizer", "Notebook Set", "Pen Pack", "Monitor Stand",
                       "Filing Cabinet", "Desk Lamp", "Whiteboard", "Label Printer")),
    "Electronics": ("ELE", ("Wireless Mouse", "Keyboard", "USB-C Hub", "Headset",
                            "Webcam", "Power Bank", "Speaker", "Charger")),
    "Furniture": ("FUR", ("Office Chair", "Standing Desk", "Bookshelf", "Footrest",
                          "Side Table", "Storage Cube")),
    "Home": ("HOM", ("Coffee Mug", "Water Bottle", "Throw Blanket", "Plant Pot",
                     "Wall Clock", "Candle Set", "Cushion")),
    "Outdoor": ("OUT", ("Backpack", "Camping Lantern", "Travel Bottle", "Picnic Blanket",
                        "Rain Jacket", "Folding Chair")),
    "Apparel": ("APP", ("T-Shirt", "Hoodie", "Cap", "Socks Pack", "Fleece", "Scarf")),
}
PRODUCT_ADJECTIVES = (
    "Classic", "Pro", "Compact", "Eco", "Deluxe", "Essential", "Ultra", "Smart", "Premium",
    "Everyday", "Studio", "Travel", "Nordic", "Urban", "Mini", "Max",
)

CAMPAIGN_THEMES = (
    "Spring Sale", "Summer Deals", "Back to Office", "Black Friday", "Holiday Gifts",
    "New Arrivals", "Prospecting", "Lookalike", "Site Visitors", "Cart Abandoners",
    "Brand Awareness", "Video Views", "Decision Makers", "Small Business", "Remote Teams",
    "Clearance", "Loyalty", "Product Launch",
)

LANDING_PAGES = (
    "/", "/sale", "/new", "/business", "/lp/office-setup", "/lp/remote-teams",
    "/lp/gift-guide", "/products/bestsellers", "/lp/free-shipping", "/lp/bulk-orders",
)

# ticket subjects by category; "{order}" is filled with an order id when there is one
TICKET_SUBJECTS: dict[str, tuple[str, ...]] = {
    "delivery": (
        "Where is my order {order}?", "Order {order} has not arrived", "Package arrived damaged",
        "Delivery delayed", "Tracking number not working", "Wrong delivery address",
    ),
    "product": (
        "Item from order {order} is faulty", "Wrong item received", "Product stopped working",
        "Missing part in my package", "Question about size", "Return request for {order}",
    ),
    "billing": (
        "Charged twice for order {order}", "Invoice request for {order}", "Refund status",
        "Payment failed", "VAT number on invoice", "Discount code not applied",
    ),
    "account": (
        "Cannot log in", "Change my e-mail address", "Delete my account",
        "Password reset not arriving", "Update company details",
    ),
    "other": (
        "Partnership inquiry", "Feedback on the website", "Bulk order question",
        "Do you ship to my country?", "Question", "Press inquiry",
    ),
}

AGENT_NAMES = (
    "Alex Morgan", "Priya Shah", "Tom Becker", "Chen Jing", "Sofia Rossi", "Marcus Lee",
    "Emma Laurent", "Noah Fischer", "Aiko Tanaka", "Daniel Brooks", "Lina Wagner",
    "Omar Haddad", "Grace Kim", "Lucas Martin", "Mei Lin", "Jonas Weber", "Hannah Scott",
    "Pedro Alves", "Zoe Carter", "Wang Fang", "Isabel Ortiz", "Felix Braun", "Nora Jansen",
    "Ryan Patel", "Clara Dubois",
)
