"""Deterministic demo review dataset with planted multi-granularity interests.

The demo data lets the dashboard start with something to show before anyone uploads
a file, and gives tests a dataset whose ground truth is known. Every user gets a
favourite L1 category (most of their reviews, high ratings), a favourite L2 inside it
and a favourite L3 inside that; about half of the users also get a disliked L1 (a few
reviews, low ratings); the rest of their reviews are noise with middling ratings. About
5 % of users are cold (a single review).

Review texts are composed from sentence pools specific to the L3 leaf, the L2 branch
and the sentiment, so an encoder can learn both the category and the rating from text.

Regenerate the committed files with::

    python -m mgi_core.data.demo demo
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("user_id", "item_id", "text", "rating", "timestamp", "category", "item_title")
CATEGORY_SEPARATOR = " > "

# 2022-01-01 00:00:00 UTC .. 2024-12-31 23:59:59 UTC, in unix seconds.
_T_START = 1_640_995_200
_T_END = 1_735_689_599

_COLD_SHARE = 0.05
_MIN_REVIEWS, _MAX_REVIEWS = 4, 20
_ITEMS_PER_LEAF = (5, 8)  # inclusive range
_NEWLINE_PROB = 0.05
_TITLE_MENTION_PROB = 0.35

# Rating distributions per role: (ratings, probabilities).
_RATINGS_FAVOURITE = ((3, 4, 5), (0.05, 0.35, 0.60))
_RATINGS_FAVOURITE_L1_OTHER = ((3, 4, 5), (0.20, 0.50, 0.30))
_RATINGS_COLD = ((4, 5), (0.40, 0.60))
_RATINGS_DISLIKED = ((1, 2), (0.55, 0.45))
_RATINGS_NOISE = ((1, 2, 3, 4, 5), (0.05, 0.17, 0.45, 0.28, 0.05))

_BRANDS = (
    "Arcadia", "Nordvik", "Solace", "Veloce", "Kestrel", "Lumen", "Orbis", "Tessera",
    "Halcyon", "Brightwater", "Corvid", "Pinecrest", "Zephyr", "Mariner", "Aurora",
    "Vantage", "Ember", "Stratus", "Ridgeline", "Nimbus", "Fjordline", "Calloway",
)  # fmt: skip

_BOOK_ADJECTIVES = (
    "Silent", "Hollow", "Crimson", "Last", "Forgotten", "Distant", "Broken", "Golden",
    "Quiet", "Winter", "Hidden", "Burning", "Lost", "Iron", "Glass", "Midnight",
)  # fmt: skip

# The category tree. Each L2 carries its own sentences; each L3 carries title nouns,
# aspects (singular and plural noun phrases) and handwritten pos/neg/mixed sentences.
# Books use "book_nouns" + "subtitle" instead of brand + product noun.
# The tables below are data, laid out by hand.
# fmt: off
_TREE: dict[str, dict[str, dict[str, Any]]] = {
    "Audio": {
        "Headphones": {
            "pos": [
                "They sit comfortably on my head for hours at a time.",
                "Sound is clear across the whole range, from the bass to the highs.",
            ],
            "neg": [
                "They clamp too hard and give me a headache after an hour.",
                "The sound is muddy, with boomy bass drowning out the vocals.",
            ],
            "leaves": {
                "Wireless": {
                    "nouns": [
                        "Wireless Noise-Cancelling Headphones",
                        "Bluetooth Over-Ear Headphones",
                        "True Wireless Earbuds",
                    ],
                    "aspects": ["battery life", "Bluetooth pairing", "noise cancelling",
                                "charging case", "touch control"],
                    "plural": ["ear cushions"],
                    "pos": [
                        "Battery life easily lasts a week of commuting on a single charge.",
                        ("Pairing with my phone over Bluetooth took seconds, and it "
                         "reconnects automatically."),
                        "The active noise cancelling makes the train ride almost silent.",
                        "I wear them at the café for hours and the ear cushions stay comfortable.",
                    ],
                    "neg": [
                        ("The Bluetooth connection keeps dropping whenever my phone is in "
                         "my pocket."),
                        ("Noise cancelling creates a weird pressure and barely blocks the "
                         "engine hum."),
                        "Battery life is nowhere near the advertised 30 hours.",
                        "The touch controls trigger every time I adjust the earcups.",
                    ],
                    "mixed": [
                        ("Noise cancelling is decent, though the battery drains faster "
                         "than I hoped."),
                    ],
                },
                "Wired": {
                    "nouns": [
                        "Studio Monitor Headphones",
                        "Wired In-Ear Monitors",
                        "Open-Back Headphones",
                    ],
                    "aspects": ["cable", "soundstage", "frequency response",
                                "3.5mm jack", "headband"],
                    "plural": ["ear pads"],
                    "pos": [
                        "The detachable cable is thick and well made, and there is zero latency.",
                        "The open soundstage makes orchestral recordings feel wide and natural.",
                        "No batteries, no pairing, just plug the cable in and they sound great.",
                        "Great for mixing, the frequency response is flat and honest.",
                    ],
                    "neg": [
                        "The cable is thin and started crackling near the jack after a month.",
                        "From a laptop headphone jack they sound thin, you really need an amp.",
                        "The cable is microphonic, so every step thumps in my ears.",
                    ],
                    "mixed": [
                        "The sound is accurate, but the non-detachable cable is a weak point.",
                    ],
                },
            },
        },
        "Speakers": {
            "pos": [
                "It fills the living room with sound without distorting at high volume.",
                "For its size the speaker sounds surprisingly full.",
            ],
            "neg": [
                "At higher volume the speaker distorts and rattles.",
                "The speaker sounds boxy and hollow, like a cheap radio.",
            ],
            "leaves": {
                "Bluetooth": {
                    "nouns": [
                        "Portable Bluetooth Speaker",
                        "Waterproof Mini Speaker",
                        "Outdoor Party Speaker",
                    ],
                    "aspects": ["waterproofing", "battery", "bass", "carrying strap",
                                "stereo pairing"],
                    "plural": ["buttons"],
                    "pos": [
                        "It survived a dunk in the pool thanks to the waterproof rating.",
                        "Took it camping and the battery lasted the whole weekend.",
                        "Pairing two of them for stereo sound is surprisingly easy.",
                    ],
                    "neg": [
                        "The battery died after three hours at the beach.",
                        "The bass is thin and tinny for a speaker this size.",
                        "It keeps disconnecting from my phone at only a few metres.",
                    ],
                    "mixed": ["Loud enough for a picnic, but the bass is weak."],
                },
                "Smart": {
                    "nouns": [
                        "Smart Speaker with Voice Assistant",
                        "Smart Home Speaker",
                        "Smart Display Speaker",
                    ],
                    "aspects": ["voice assistant", "microphone", "app setup", "wake word",
                                "multi-room audio"],
                    "plural": ["privacy settings"],
                    "pos": [
                        ("The voice assistant hears me from across the kitchen, even with "
                         "the radio on."),
                        "Multi-room audio works perfectly with the rest of my smart home.",
                        "Setup through the app took two minutes and it found my Wi-Fi right away.",
                    ],
                    "neg": [
                        "The voice assistant misunderstands half of my requests.",
                        "It wakes up randomly when the TV is on, which is creepy.",
                        "The app setup failed three times before it joined the Wi-Fi.",
                    ],
                    "mixed": ["Handy for timers and the weather, but music sounds flat."],
                },
            },
        },
        "Hi-Fi": {
            "pos": [
                "It gives my record collection the warm, detailed sound I was after.",
                "My hi-fi setup finally sounds the way I always wanted.",
            ],
            "neg": [
                "There is an audible hum from the speakers at every volume.",
                "It added noise to a hi-fi chain that used to be dead quiet.",
            ],
            "leaves": {
                "Turntables": {
                    "nouns": ["Belt-Drive Turntable", "Direct-Drive Record Player",
                              "Bluetooth Turntable"],
                    "aspects": ["tonearm", "platter", "cartridge", "built-in preamp",
                                "dust cover"],
                    "plural": ["vinyl records"],
                    "pos": [
                        "The tonearm is well balanced and tracks warped vinyl without skipping.",
                        "Vinyl sounds warm and rich, and the built-in preamp is a nice bonus.",
                        "The platter spins at a rock-steady 33 RPM.",
                    ],
                    "neg": [
                        "The stock cartridge is cheap and my records sound harsh.",
                        "The platter speed drifts, so sustained notes waver.",
                        "The tonearm lift is clumsy and I nearly scratched a record.",
                    ],
                    "mixed": [
                        "Nice looking deck, though I will upgrade the cartridge eventually.",
                    ],
                },
                "Amplifiers": {
                    "nouns": ["Stereo Integrated Amplifier", "Tube Headphone Amplifier",
                              "Compact Class-D Amplifier"],
                    "aspects": ["power output", "volume knob", "phono input",
                                "built-in DAC", "remote control"],
                    "plural": ["speaker terminals"],
                    "pos": [
                        "Plenty of power to drive my bookshelf speakers with headroom to spare.",
                        "The built-in DAC and phono input mean I need nothing else.",
                        "The volume knob is smooth and weighty, it feels premium.",
                    ],
                    "neg": [
                        "It runs hot and the protection circuit cuts out during loud passages.",
                        "There is a constant hiss from the tweeters even with nothing playing.",
                        "The volume jumps from quiet to very loud with no middle ground.",
                    ],
                    "mixed": ["Clean sound, but only two inputs."],
                },
            },
        },
    },
    "Cameras": {
        "Lenses": {
            "pos": [
                "Images are sharp right into the corners.",
                "Colours and contrast straight out of this lens are lovely.",
            ],
            "neg": [
                "There is noticeable chromatic aberration on high-contrast edges.",
                "Flare and ghosting ruin shots whenever the sun is in frame.",
            ],
            "leaves": {
                "Prime": {
                    "nouns": ["50mm f/1.8 Prime Lens", "35mm f/1.4 Prime Lens",
                              "85mm f/1.8 Portrait Lens"],
                    "aspects": ["sharpness", "bokeh", "autofocus", "aperture ring",
                                "build quality"],
                    "plural": ["out-of-focus highlights"],
                    "pos": [
                        "Wide open at f/1.8 the bokeh is creamy and smooth.",
                        "Autofocus is fast and quiet, perfect for portraits.",
                        "Tack sharp at f/2.8, I barely use my zoom any more.",
                    ],
                    "neg": [
                        "Autofocus hunts in low light and misses the eyes.",
                        "Wide open it is soft and hazy, you have to stop down to f/4.",
                        "The bokeh is busy and nervous, with harsh outlines.",
                    ],
                    "mixed": ["Sharp in the centre, but focus breathing is strong."],
                },
                "Zoom": {
                    "nouns": ["24-70mm f/2.8 Zoom Lens", "70-200mm Telephoto Zoom",
                              "18-135mm Travel Zoom"],
                    "aspects": ["zoom ring", "image stabilisation", "focal range",
                                "telephoto end", "lens hood"],
                    "plural": ["corners at the wide end"],
                    "pos": [
                        "The focal range covers everything from landscapes to portraits on a trip.",
                        "Image stabilisation let me shoot handheld at 1/15s at the long end.",
                        "The zoom ring is smooth and the lens does not creep when pointed down.",
                    ],
                    "neg": [
                        "It is soft at the telephoto end, no matter the aperture.",
                        "Lens creep is terrible, it extends on its own when I walk.",
                        "Stabilisation makes a grinding noise that ends up in my videos.",
                    ],
                    "mixed": ["Versatile focal range, but heavy to carry all day."],
                },
            },
        },
        "Camera Bodies": {
            "pos": [
                "The grip is deep and every dial falls right under my fingers.",
                "Image quality from this camera body is a big step up from my phone.",
            ],
            "neg": [
                "The menus are a maze and the buttons feel cheap.",
                "The camera body creaks and the card door feels flimsy.",
            ],
            "leaves": {
                "Mirrorless": {
                    "nouns": ["Full-Frame Mirrorless Camera", "APS-C Mirrorless Camera",
                              "Compact Mirrorless Camera Kit"],
                    "aspects": ["electronic viewfinder", "eye autofocus", "sensor",
                                "low-light performance", "video mode"],
                    "plural": ["custom buttons"],
                    "pos": [
                        "Eye autofocus locks on and follows a running child perfectly.",
                        "The electronic viewfinder is bright and lag-free.",
                        "Low-light performance at ISO 6400 is amazingly clean.",
                    ],
                    "neg": [
                        "The battery barely lasts 250 shots, I carry three spares.",
                        "The electronic viewfinder lags when panning.",
                        "It overheats after twenty minutes of 4K video.",
                    ],
                    "mixed": ["Superb sensor, but the battery life is short."],
                },
                "DSLR": {
                    "nouns": ["Entry-Level DSLR Camera", "Enthusiast DSLR Body",
                              "DSLR Camera with Kit Lens"],
                    "aspects": ["optical viewfinder", "shutter", "live view",
                                "burst mode", "battery grip"],
                    "plural": ["autofocus points"],
                    "pos": [
                        "The optical viewfinder is bright and clear, with no lag at all.",
                        "The battery lasts well over a thousand shots.",
                        "Burst mode keeps up with birds in flight.",
                    ],
                    "neg": [
                        "Live view autofocus is painfully slow.",
                        "The shutter mechanism failed after 20,000 clicks.",
                        "It is bulky and heavy compared to modern cameras.",
                    ],
                    "mixed": [
                        "Reliable, though the autofocus points are clustered in the centre.",
                    ],
                },
            },
        },
        "Accessories": {
            "pos": [
                "Well made and clearly designed by people who actually take photos.",
                "A camera accessory that does its job and stays out of the way.",
            ],
            "neg": [
                "It feels cheap and I would not trust it with expensive camera gear.",
                "Poorly finished, with rough edges and loose stitching.",
            ],
            "leaves": {
                "Tripods": {
                    "nouns": ["Carbon Fibre Travel Tripod", "Aluminium Tripod with Ball Head",
                              "Compact Tabletop Tripod"],
                    "aspects": ["ball head", "centre column", "quick release plate",
                                "stability", "folded length"],
                    "plural": ["leg locks"],
                    "pos": [
                        "The ball head locks solid, with no droop even under a heavy lens.",
                        "It folds down small enough to strap to my backpack for hikes.",
                        "The twist leg locks are quick and rock steady for long exposures.",
                    ],
                    "neg": [
                        "The ball head slowly droops during long exposures.",
                        "A leg lock cracked on the second outing.",
                        "It wobbles in the slightest wind, useless for night shots.",
                    ],
                    "mixed": ["Light and compact, but not very stable at full height."],
                },
                "Camera Bags": {
                    "nouns": ["Camera Backpack", "Messenger Camera Bag", "Camera Sling Bag"],
                    "aspects": ["padding", "rain cover", "side access", "laptop sleeve",
                                "main compartment"],
                    "plural": ["zips", "shoulder straps", "padded dividers"],
                    "pos": [
                        "The padded dividers hold a body and three lenses snugly.",
                        "Side access lets me grab the camera without taking the bag off.",
                        "The rain cover kept everything dry during a storm.",
                    ],
                    "neg": [
                        "The main zip broke within a month.",
                        "The padding is thin and the dividers keep falling over.",
                        "The straps dig into my shoulders after an hour.",
                    ],
                    "mixed": ["Plenty of room for lenses, but no space for a laptop."],
                },
            },
        },
    },
    "Computers": {
        "Laptops": {
            "pos": [
                "The laptop screen is crisp and the trackpad is precise.",
                "It boots fast and handles everything I throw at it.",
            ],
            "neg": [
                "The trackpad is jumpy and the laptop screen is dim.",
                "It came loaded with bloatware and runs sluggishly.",
            ],
            "leaves": {
                "Ultrabooks": {
                    "nouns": ["13-inch Ultrabook", "Thin and Light Laptop",
                              "2-in-1 Convertible Laptop"],
                    "aspects": ["battery life", "keyboard", "display", "fan noise",
                                "USB-C charging"],
                    "plural": ["ports"],
                    "pos": [
                        ("Battery life gets me through a full workday of spreadsheets and "
                         "video calls."),
                        "At just over a kilo it is easy to carry around all day.",
                        "Charging over USB-C means one charger for everything.",
                    ],
                    "neg": [
                        "The fan whines constantly, even when I am just browsing.",
                        "Only two USB-C ports, so I live with a dongle.",
                        "Battery life dropped to three hours within a few months.",
                    ],
                    "mixed": ["Gorgeous display, but the keyboard is shallow."],
                },
                "Gaming Laptops": {
                    "nouns": ["Gaming Laptop with RTX Graphics", "17-inch Gaming Laptop",
                              "High Refresh Gaming Notebook"],
                    "aspects": ["graphics card", "refresh rate", "cooling", "frame rate",
                                "RGB keyboard"],
                    "plural": ["fans"],
                    "pos": [
                        "It runs new games at high settings at well over 100 FPS.",
                        "The 165Hz refresh rate makes shooters feel buttery smooth.",
                        "Cooling is excellent, it stays fairly quiet under load.",
                    ],
                    "neg": [
                        "It thermal throttles within minutes and the frame rate tanks.",
                        "The fans sound like a jet engine in any game.",
                        "The power brick is huge and the battery lasts barely an hour.",
                    ],
                    "mixed": ["Great frame rate, but it is heavy and loud."],
                },
            },
        },
        "Peripherals": {
            "pos": [
                "It connected instantly and works on both my Mac and my PC.",
                "A desk peripheral that makes long work sessions more comfortable.",
            ],
            "neg": [
                "The driver software is bloated and crashes on startup.",
                "The USB receiver keeps losing the connection.",
            ],
            "leaves": {
                "Keyboards": {
                    "nouns": ["Mechanical Keyboard", "Wireless Low-Profile Keyboard",
                              "Tenkeyless Mechanical Keyboard"],
                    "aspects": ["typing feel", "backlight", "spacebar", "wrist rest",
                                "key layout"],
                    "plural": ["switches", "keycaps"],
                    "pos": [
                        "The tactile switches make typing a joy.",
                        "The keycaps are thick PBT and the legends will not wear off.",
                        "The backlight is even and has nice, subtle levels.",
                    ],
                    "neg": [
                        "Several keys started chattering and double typing.",
                        "The spacebar rattles badly.",
                        "The keycaps became shiny after a few weeks.",
                    ],
                    "mixed": ["Nice typing feel, but it is loud for an open office."],
                },
                "Mice": {
                    "nouns": ["Ergonomic Wireless Mouse", "Lightweight Gaming Mouse",
                              "Vertical Mouse"],
                    "aspects": ["sensor", "scroll wheel", "grip", "click feel",
                                "DPI switch"],
                    "plural": ["side buttons"],
                    "pos": [
                        "The sensor tracks perfectly, even on my glass desk.",
                        "The ergonomic shape ended my wrist pain.",
                        ("The scroll wheel switches between free-spin and notched, "
                         "brilliant for long documents."),
                    ],
                    "neg": [
                        "The left button started double clicking after two months.",
                        "The scroll wheel squeaks and skips.",
                        "It is too small for my hand and my wrist aches.",
                    ],
                    "mixed": ["Good sensor, but the side buttons are hard to reach."],
                },
            },
        },
        "Storage": {
            "pos": [
                "Transfers are fast and files copy without a hiccup.",
                "Plenty of storage space and it has been completely reliable.",
            ],
            "neg": [
                "Transfer speeds drop to a crawl on large files.",
                "The drive is not recognised half the time I plug it in.",
            ],
            "leaves": {
                "SSDs": {
                    "nouns": ["1TB NVMe SSD", "2TB M.2 SSD", "500GB SATA SSD"],
                    "aspects": ["read speed", "write speed", "heatsink", "endurance",
                                "installation"],
                    "plural": ["benchmarks"],
                    "pos": [
                        "My laptop now boots in under ten seconds.",
                        "Sequential read speed hit 7000 MB/s in benchmarks.",
                        "Cloning my old drive was easy with the included software.",
                    ],
                    "neg": [
                        "Write speed falls off a cliff once the cache fills.",
                        "It runs hot without a heatsink and throttles.",
                        "The drive failed after six months and I lost data.",
                    ],
                    "mixed": [
                        "Fast reads, but the included migration tool was confusing.",
                    ],
                },
                "External Drives": {
                    "nouns": ["Portable External Hard Drive", "Rugged Portable SSD",
                              "Desktop Backup Drive"],
                    "aspects": ["USB cable", "backup software", "enclosure", "capacity",
                                "transfer speed"],
                    "plural": ["status lights"],
                    "pos": [
                        "It backs up my photo library every night without me thinking about it.",
                        "The rugged enclosure survived a drop onto concrete.",
                        "Small enough for my pocket, yet it holds all my projects.",
                    ],
                    "neg": [
                        "The USB cable is too short and sits loose in the port.",
                        "It randomly disconnects in the middle of backups.",
                        "The drive clicks loudly and gets very warm.",
                    ],
                    "mixed": ["Plenty of capacity, though slower than I expected."],
                },
            },
        },
    },
    "Home & Kitchen": {
        "Coffee": {
            "pos": [
                "My coffee now tastes as good as at my favourite café.",
                "Morning coffee has become the best part of my day.",
            ],
            "neg": [
                "The coffee tastes bitter and burnt.",
                "Cleaning coffee grounds out of it is a daily chore.",
            ],
            "leaves": {
                "Espresso Machines": {
                    "nouns": ["Espresso Machine with Milk Frother",
                              "Manual Lever Espresso Maker", "Bean-to-Cup Coffee Machine"],
                    "aspects": ["crema", "steam wand", "portafilter", "pressure gauge",
                                "water tank"],
                    "plural": ["shots"],
                    "pos": [
                        "It pulls shots with thick, golden crema.",
                        "The steam wand makes silky microfoam for latte art.",
                        "It heats up in under a minute, so my morning flat white is quick.",
                    ],
                    "neg": [
                        "The steam wand is weak and the milk never gets frothy.",
                        "The pump is loud and the portafilter leaks around the gasket.",
                        "The water tank is tiny and needs refilling every two cups.",
                    ],
                    "mixed": ["Good espresso once dialled in, but a steep learning curve."],
                },
                "Grinders": {
                    "nouns": ["Burr Coffee Grinder", "Manual Hand Grinder",
                              "Conical Burr Grinder"],
                    "aspects": ["grind consistency", "hopper", "motor", "static",
                                "grind adjustment"],
                    "plural": ["burrs", "grind settings"],
                    "pos": [
                        "Grind consistency is excellent, from espresso to French press.",
                        "Conical burrs and lots of settings made dialling in easy.",
                        "Barely any static or retention, so it stays clean.",
                    ],
                    "neg": [
                        "The grind is uneven, with lots of fines and boulders.",
                        "Grounds fly everywhere because of the static.",
                        "The motor is loud and it stalls on light roasts.",
                    ],
                    "mixed": ["Good for filter coffee, but not fine enough for espresso."],
                },
            },
        },
        "Cookware": {
            "pos": [
                "It heats evenly and cleans up easily.",
                "Cooking dinner has been much more enjoyable with it.",
            ],
            "neg": [
                "It heats unevenly, with hot spots in the middle.",
                "Food sticks and burns no matter how much oil I use.",
            ],
            "leaves": {
                "Frying Pans": {
                    "nouns": ["Nonstick Frying Pan", "Cast Iron Skillet",
                              "Stainless Steel Frying Pan"],
                    "aspects": ["nonstick coating", "handle", "induction base",
                                "heat distribution", "seasoning"],
                    "plural": ["sides"],
                    "pos": [
                        "Eggs slide right off the nonstick coating.",
                        "It sears steak beautifully and goes straight from hob to oven.",
                        "Works perfectly on my induction hob.",
                    ],
                    "neg": [
                        "The nonstick coating started peeling after a month.",
                        "The handle gets scorching hot.",
                        "It warped on high heat and now wobbles on the hob.",
                    ],
                    "mixed": ["Decent pan, though the coating already shows scratches."],
                },
                "Dutch Ovens": {
                    "nouns": ["Enamelled Cast Iron Dutch Oven", "5-Quart Dutch Oven",
                              "Oval Casserole Dish"],
                    "aspects": ["enamel", "lid", "weight", "capacity", "knob"],
                    "plural": ["handles"],
                    "pos": [
                        "Perfect for slow-cooked stews and crusty sourdough.",
                        "The heavy lid seals in moisture, so braises come out tender.",
                        "The enamel still looks new after a year of weekly use.",
                    ],
                    "neg": [
                        "The enamel chipped on the very first use.",
                        "The lid does not sit flat and lets the steam escape.",
                        "The knob is not oven safe above 200°C, which defeats the purpose.",
                    ],
                    "mixed": ["Cooks evenly, but it is very heavy to lift when full."],
                },
            },
        },
        "Small Appliances": {
            "pos": [
                "Easy to clean, and the controls are simple.",
                "A kitchen appliance that earns its space on the counter.",
            ],
            "neg": [
                "Hard to clean, and it smells like hot plastic.",
                "It takes up half the counter for very little benefit.",
            ],
            "leaves": {
                "Blenders": {
                    "nouns": ["High-Speed Blender", "Personal Smoothie Blender",
                              "Immersion Blender"],
                    "aspects": ["motor", "jar", "noise level", "ice crushing", "lid"],
                    "plural": ["blades"],
                    "pos": [
                        "It makes perfectly smooth smoothies with frozen fruit and ice.",
                        "The powerful motor crushes ice in seconds.",
                        "Soup blends velvety smooth right in the pot.",
                    ],
                    "neg": [
                        "It leaves chunks of kale no matter how long I blend.",
                        "The jar leaks from the base.",
                        "The motor smells burnt after blending ice.",
                    ],
                    "mixed": ["Blends well, but it is extremely loud."],
                },
                "Air Fryers": {
                    "nouns": ["Digital Air Fryer", "Air Fryer Oven", "Compact Air Fryer"],
                    "aspects": ["basket", "timer", "capacity", "temperature control",
                                "display"],
                    "plural": ["presets"],
                    "pos": [
                        "Fries come out crispy with a fraction of the oil.",
                        "The basket is nonstick and goes straight in the dishwasher.",
                        "Chicken wings crisp up in twenty minutes with no preheating.",
                    ],
                    "neg": [
                        "The basket coating flakes off into the food.",
                        "Capacity is tiny, I have to cook in three batches.",
                        "The timer dial is imprecise and things burn.",
                    ],
                    "mixed": ["Crispy results, but the basket is small for a family."],
                },
            },
        },
    },
    "Books": {
        "Fiction": {
            "pos": [
                "The characters feel real and I could not put the book down.",
                "Beautifully written, I read the last hundred pages in one sitting.",
            ],
            "neg": [
                "The characters are flat and the dialogue is wooden.",
                "The writing is clumsy and I had to force myself to finish the book.",
            ],
            "leaves": {
                "Mystery": {
                    "book_nouns": ["Harbour", "Orchard", "Lighthouse", "Letter", "Key",
                                   "Witness", "Manor", "Alibi"],
                    "subtitle": ": A Mystery",
                    "aspects": ["detective", "pacing", "ending", "central puzzle",
                                "final reveal"],
                    "plural": ["plot twists", "clues"],
                    "pos": [
                        "The plot twists kept me guessing until the final chapter.",
                        "The detective is sharp, flawed and wonderfully human.",
                        "Every clue is fair, and the reveal made perfect sense.",
                        ("The young detective is a little naïve at first, which makes "
                         "her easy to root for."),
                    ],
                    "neg": [
                        "I guessed the murderer by chapter three.",
                        "The detective's leaps of logic make no sense.",
                        "The ending feels rushed and the twist comes out of nowhere.",
                    ],
                    "mixed": ["A clever whodunit puzzle, but the middle drags."],
                },
                "Science Fiction": {
                    "book_nouns": ["Star", "Horizon", "Colony", "Signal", "Orbit",
                                   "Machine", "Nebula", "Drift"],
                    "subtitle": ": A Novel",
                    "aspects": ["world-building", "premise", "science", "starship crew",
                                "first contact plot"],
                    "plural": ["aliens", "space battles"],
                    "pos": [
                        "The world-building is vast and detailed, with a believable future.",
                        "The premise about first contact is fresh and thought-provoking.",
                        "The science feels grounded, even with faster-than-light travel.",
                    ],
                    "neg": [
                        "Pages and pages of technobabble with no plot.",
                        "The aliens are just humans with a different skin colour.",
                        "An interesting science fiction premise wasted on a dull story.",
                    ],
                    "mixed": ["Great sci-fi ideas, but the prose is clunky."],
                },
            },
        },
        "Non-Fiction": {
            "pos": [
                "Well researched, with clear sources and notes.",
                "I learned something new on almost every page.",
            ],
            "neg": [
                "Poorly researched and full of sweeping claims.",
                "The book never gets beyond a superficial summary.",
            ],
            "leaves": {
                "History": {
                    "book_nouns": ["Empire", "Republic", "Crown", "Frontier",
                                   "Revolution", "Dynasty", "Campaign", "Treaty"],
                    "subtitle": ": A History",
                    "aspects": ["research", "narrative", "historical detail",
                                "chronology", "bibliography"],
                    "plural": ["maps", "primary sources"],
                    "pos": [
                        "It brings the Roman Republic to life with vivid primary sources.",
                        "The maps and timelines make the campaigns easy to follow.",
                        "A gripping narrative history that reads like a novel.",
                    ],
                    "neg": [
                        "Dry as dust, a list of dates and battles with no story.",
                        "The historian pushes a thesis and ignores the evidence.",
                        "Full of factual errors that a quick check would have caught.",
                    ],
                    "mixed": ["Informative history, but dense and slow going."],
                },
                "Self-Help": {
                    "book_nouns": ["Habit", "Morning", "Mindset", "Focus", "Balance",
                                   "Compass", "Path", "Step"],
                    "subtitle": ": A Guide to Better Habits",
                    "aspects": ["advice", "tone", "habit tracker", "central idea",
                                "chapter on motivation"],
                    "plural": ["exercises", "examples"],
                    "pos": [
                        "The practical advice on building habits actually stuck with me.",
                        "The exercises at the end of each chapter are genuinely useful.",
                        "Motivating without being preachy, I changed my morning routine.",
                    ],
                    "neg": [
                        "Common sense padded out to three hundred pages.",
                        "The advice is vague and the anecdotes feel made up.",
                        "Preachy and repetitive, with the same point in every chapter.",
                    ],
                    "mixed": ["A few good self-help ideas, but it could have been a blog post."],
                },
            },
        },
    },
    "Sports & Outdoors": {
        "Camping": {
            "pos": [
                "It packs down small and survived a rainy weekend in the hills.",
                "Great camping gear for the money, I use it on every trip.",
            ],
            "neg": [
                "Bulky to carry and not built for real weather at the campsite.",
                "It failed on the first night of a camping trip, which was miserable.",
            ],
            "leaves": {
                "Tents": {
                    "nouns": ["2-Person Backpacking Tent", "Family Camping Tent",
                              "Ultralight Trekking Pole Tent"],
                    "aspects": ["rainfly", "setup", "ventilation", "groundsheet",
                                "vestibule"],
                    "plural": ["poles", "seams", "tent pegs"],
                    "pos": [
                        "Setup takes five minutes, even alone in the dark.",
                        "The rainfly kept us bone dry through a night of heavy rain.",
                        "Good ventilation, so no condensation dripping in the morning.",
                    ],
                    "neg": [
                        "The seams leaked in the first rain.",
                        "One of the tent poles snapped in moderate wind.",
                        "Condensation soaked our sleeping bags by morning.",
                    ],
                    "mixed": ["Roomy and easy to pitch, but heavy for backpacking."],
                },
                "Sleeping Bags": {
                    "nouns": ["Down Sleeping Bag", "Synthetic Three-Season Sleeping Bag",
                              "Mummy Sleeping Bag"],
                    "aspects": ["temperature rating", "zip", "down fill",
                                "compression sack", "hood"],
                    "plural": ["baffles"],
                    "pos": [
                        "Warm and cosy down to freezing, just as rated.",
                        "It packs into a tiny compression sack.",
                        "The hood and draft collar keep the warmth in.",
                    ],
                    "neg": [
                        "Rated to 0°C, but I was freezing at 8°C.",
                        "The zip snags on the lining constantly.",
                        "The down clumps and leaves cold spots.",
                    ],
                    "mixed": ["Warm enough in summer, but bulky in the pack."],
                },
            },
        },
        "Fitness": {
            "pos": [
                "Sturdy, well made, and I use it for my workouts almost every day.",
                "It made working out at home a real habit.",
            ],
            "neg": [
                "Cheaply made, and it already shows wear after a few workouts.",
                "It ended up in the cupboard after a week of workouts.",
            ],
            "leaves": {
                "Yoga Mats": {
                    "nouns": ["Non-Slip Yoga Mat", "Extra Thick Exercise Mat",
                              "Travel Yoga Mat"],
                    "aspects": ["grip", "cushioning", "thickness", "carrying strap",
                                "surface"],
                    "plural": ["alignment lines"],
                    "pos": [
                        "The grip stays solid even in hot yoga.",
                        "Thick enough to protect my knees without feeling wobbly.",
                        "Light, rolls up small and comes with a carrying strap.",
                    ],
                    "neg": [
                        "It gets slippery as soon as I start sweating.",
                        "It smells strongly of rubber even after weeks of airing.",
                        "The surface started flaking after a month of yoga.",
                    ],
                    "mixed": ["Good cushioning, but the grip could be better."],
                },
                "Dumbbells": {
                    "nouns": ["Adjustable Dumbbells", "Hex Dumbbell Set",
                              "Neoprene Dumbbells"],
                    "aspects": ["weight selector", "handle", "knurling", "stand",
                                "rubber coating"],
                    "plural": ["plates"],
                    "pos": [
                        "Switching weights with the dial takes two seconds.",
                        "The knurled handles give a secure grip.",
                        "They replaced a whole rack of weights in my small flat.",
                    ],
                    "neg": [
                        "The weight selector jams and the plates fall out.",
                        "The rubber coating smells and leaves marks on the floor.",
                        "The handle is too thick for a comfortable grip.",
                    ],
                    "mixed": [
                        "Convenient, but the adjustment mechanism feels fragile.",
                    ],
                },
            },
        },
        "Cycling": {
            "pos": [
                "Easy to fit to my bike and it feels secure on rough roads.",
                "It made my daily bike commute noticeably safer.",
            ],
            "neg": [
                "Fiddly to mount on the bike and it rattles on every bump.",
                "Not something I would trust on a long ride.",
            ],
            "leaves": {
                "Bike Lights": {
                    "nouns": ["USB Rechargeable Bike Light Set", "Bright Front Bike Light",
                              "Rear Bike Light with Brake Sensor"],
                    "aspects": ["brightness", "beam", "mount", "battery", "charging port"],
                    "plural": ["flash modes"],
                    "pos": [
                        "Bright enough to light up unlit country lanes.",
                        "The beam is wide and does not dazzle oncoming traffic.",
                        "It charges over USB and lasts a week of commutes.",
                    ],
                    "neg": [
                        "The mount cracked and the light fell off on a pothole.",
                        "Rain got into the charging port and it died.",
                        "The battery lasts barely an hour on the high setting.",
                    ],
                    "mixed": ["Bright, but the mount is fiddly."],
                },
                "Helmets": {
                    "nouns": ["Road Cycling Helmet", "Commuter Bike Helmet with Light",
                              "MIPS Mountain Bike Helmet"],
                    "aspects": ["fit", "ventilation", "strap buckle", "MIPS liner",
                                "visor"],
                    "plural": ["straps", "vents"],
                    "pos": [
                        "Light, well ventilated, and I forget I am wearing it.",
                        "The dial fit system makes it snug without pressure points.",
                        "The MIPS liner gives me peace of mind on descents.",
                    ],
                    "neg": [
                        "The straps will not stay adjusted and keep loosening.",
                        "Poor ventilation, my head is soaked after a short ride.",
                        "It sits high and wobbles even at the tightest setting.",
                    ],
                    "mixed": ["Comfortable, but the visor is flimsy."],
                },
            },
        },
    },
}

# Sentiment pools. Openings are by rating; features and closings by polarity.
_OPENINGS = {
    5: [
        "Absolutely love this.",
        "One of the best purchases I have made this year.",
        "Five stars, no hesitation.",
        "Outstanding, it exceeded every expectation.",
        "Wow, this is fantastic.",
        "I could not be happier with it.",
    ],
    4: [
        "Really happy with this overall.",
        "Very good, with one or two small quibbles.",
        "Solid buy, I would recommend it.",
        "Pleasantly surprised by the quality.",
        "Good value and it works well.",
        "Nice, does what it promises.",
    ],
    3: [
        "It is okay.",
        "Mixed feelings about this one.",
        "Does the job, but I expected more.",
        "Average, nothing to write home about.",
        "Some things I like, some I really do not.",
        "Three stars feels about right.",
    ],
    2: [
        "Pretty disappointed, to be honest.",
        "Not great.",
        "I wanted to like this, but it fell short.",
        "Below average for the price.",
        "Disappointing, several things bother me.",
        "Would not buy it again.",
    ],
    1: [
        "Complete waste of money.",
        "Awful, I returned it within a week.",
        "Do not buy this.",
        "Terrible, easily the worst purchase this year.",
        "Save your money and look elsewhere.",
        "Genuinely one of the worst things I have bought.",
    ],
}

_CLOSINGS = {
    "pos": [
        "Would buy again.",
        "Highly recommended.",
        "My partner already wants one too.",
        'A friend called it "the best thing I bought all year", and I get why.',
        "Worth every penny.",
        "I have already recommended it to two friends.",
    ],
    "mixed": [
        "Might be worth it on sale.",
        "Not bad, not great.",
        'It is "good enough", as my brother put it.',
        "I will keep it, but I would not buy it again at full price.",
        "Fine if your expectations are modest.",
    ],
    "neg": [
        "I am returning it.",
        "Avoid.",
        "Cannot recommend it, sadly.",
        'The listing says "premium quality", which is quite a stretch.',
        "Customer service was no help either.",
        "Look elsewhere.",
    ],
}

_ASPECT_TEMPLATES = {
    "pos": [
        "The {a} {is} {adj}.",
        "I was really impressed by the {a}.",
        "Honestly, the {a} exceeded my expectations.",
        "The {a} {is} where this really shines.",
        "No complaints about the {a}, {it} {is} {adj}.",
    ],
    "neg": [
        "The {a} {is} {nadj}.",
        "I was disappointed by the {a}.",
        "The {a} really let me down.",
        "I cannot say anything good about the {a}.",
        "The {a} {is} where it all falls apart.",
    ],
    "mixed": [
        "The {a} {is} okay, nothing special.",
        "The {a} {is} about what you would expect for the price.",
        "The {a} {is} decent but not remarkable.",
    ],
}
_POS_ADJECTIVES = ("excellent", "superb", "outstanding", "really solid", "better than expected",
                   "top-notch", "great")
_NEG_ADJECTIVES = ("poor", "disappointing", "flimsy", "frustrating", "mediocre at best",
                   "worse than advertised")

_TITLE_OPENERS_PRODUCT = [
    "I bought {t} {when}.",
    "Picked up {t} {when} after reading a few reviews.",
    "Got {t} {when}.",
    "I have been using {t} since I bought it {when}.",
]
_TITLE_OPENERS_BOOK = [
    "I read {t} {when}.",
    "Picked up {t} on a friend's recommendation and read it {when}.",
    "Finished {t} {when}.",
]
_WHEN_PRODUCT = ("last month", "a few weeks ago", "in the spring sale", "for my birthday",
                 "after my old one broke", "on sale", "before a trip")
_WHEN_BOOK = ("last month", "on holiday", "over a long weekend", "on the train to work",
              "for my book club", "in one rainy week")
# fmt: on


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    """Return one element of a sequence, chosen uniformly."""
    return seq[int(rng.integers(len(seq)))]


def _draw_rating(rng: np.random.Generator, spec: tuple[tuple[int, ...], tuple[float, ...]]) -> int:
    """Draw an int rating from a (values, probabilities) pair."""
    values, probs = spec
    return int(values[int(rng.choice(len(values), p=np.asarray(probs)))])


def _leaf_paths() -> list[tuple[str, str, str]]:
    """All (L1, L2, L3) triples of the tree, in tree order."""
    return [
        (l1, l2, l3)
        for l1, branches in _TREE.items()
        for l2, branch in branches.items()
        for l3 in branch["leaves"]
    ]


def _path(*parts: str) -> str:
    return CATEGORY_SEPARATOR.join(parts)


def _build_catalog(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Create the items: id, leaf, title and a popularity weight within the leaf."""
    items: list[dict[str, Any]] = []
    titles: set[str] = set()
    for l1, l2, l3 in _leaf_paths():
        leaf = _TREE[l1][l2]["leaves"][l3]
        n_items = int(rng.integers(_ITEMS_PER_LEAF[0], _ITEMS_PER_LEAF[1] + 1))
        # Zipf-like popularity within the leaf, in random order.
        ranks = rng.permutation(n_items) + 1
        for k in range(n_items):
            title = ""
            for _ in range(100):
                if "book_nouns" in leaf:
                    title = (
                        f"The {_pick(rng, _BOOK_ADJECTIVES)} "
                        f"{_pick(rng, leaf['book_nouns'])}{leaf['subtitle']}"
                    )
                else:
                    title = f"{_pick(rng, _BRANDS)} {_pick(rng, leaf['nouns'])}"
                if title not in titles:
                    break
            else:  # pragma: no cover - the pools are large enough
                raise RuntimeError(f"could not find a unique title for {l1}/{l2}/{l3}")
            titles.add(title)
            items.append(
                {
                    "item_id": f"I{len(items) + 1:04d}",
                    "l1": l1,
                    "l2": l2,
                    "l3": l3,
                    "category": _path(l1, l2, l3),
                    "title": title,
                    "weight": 1.0 / float(ranks[k]) ** 0.8,
                    "is_book": "book_nouns" in leaf,
                }
            )
    return items


class _ItemPicker:
    """Draws distinct items for one user, by popularity, falling back to nearby leaves."""

    def __init__(self, rng: np.random.Generator, items: list[dict[str, Any]]) -> None:
        self._rng = rng
        self._by_leaf: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for item in items:
            self._by_leaf.setdefault((item["l1"], item["l2"], item["l3"]), []).append(item)
        self.used: set[str] = set()

    def available(self, leaf: tuple[str, str, str]) -> int:
        return sum(1 for it in self._by_leaf[leaf] if it["item_id"] not in self.used)

    def take(self, leaves: list[tuple[str, str, str]], k: int) -> list[dict[str, Any]]:
        """Take k unused items, from the first leaf first, then the next ones in order."""
        chosen: list[dict[str, Any]] = []
        for leaf in leaves:
            if len(chosen) == k:
                break
            pool = [it for it in self._by_leaf[leaf] if it["item_id"] not in self.used]
            n = min(k - len(chosen), len(pool))
            if n == 0:
                continue
            weights = np.array([it["weight"] for it in pool])
            idx = self._rng.choice(len(pool), size=n, replace=False, p=weights / weights.sum())
            for i in idx:
                chosen.append(pool[int(i)])
                self.used.add(pool[int(i)]["item_id"])
        if len(chosen) < k:  # pragma: no cover - the catalog is large enough
            raise RuntimeError(f"ran out of items in {leaves}")
        return chosen


def _polarity(rating: int) -> str:
    return "pos" if rating >= 4 else "neg" if rating <= 2 else "mixed"


def _aspect_sentence(rng: np.random.Generator, leaf: dict[str, Any], polarity: str) -> str:
    """Fill a generic aspect template with one of the leaf's aspects."""
    plural = bool(rng.random() < 0.25) and bool(leaf["plural"])
    aspect = _pick(rng, leaf["plural"] if plural else leaf["aspects"])
    sentence = _pick(rng, _ASPECT_TEMPLATES[polarity]).format(
        a=aspect,
        adj=_pick(rng, _POS_ADJECTIVES),
        nadj=_pick(rng, _NEG_ADJECTIVES),
        **({"is": "are", "it": "they"} if plural else {"is": "is", "it": "it"}),
    )
    return sentence[0].upper() + sentence[1:]


def _feature_polarities(rng: np.random.Generator, rating: int) -> list[str]:
    """Polarities of the 1-3 feature sentences of a review with this rating."""
    n = int(rng.integers(1, 4))
    if rating == 3:
        options = [["mixed"], ["pos", "neg"], ["neg", "pos"], ["mixed", "neg"], ["pos", "mixed"]]
        return list(_pick(rng, options))
    main = _polarity(rating)
    out = [main] * n
    if rating in (2, 4) and n >= 2 and rng.random() < 0.3:
        out[-1] = "mixed"
    return out


def _compose_text(rng: np.random.Generator, item: dict[str, Any], rating: int) -> str:
    """Compose a 2-5 sentence review of an item that matches its leaf and rating."""
    branch = _TREE[item["l1"]][item["l2"]]
    leaf = branch["leaves"][item["l3"]]
    polarity = _polarity(rating)
    sentences: list[str] = []

    mention_title = rng.random() < _TITLE_MENTION_PROB
    if mention_title:
        title = item["title"] if item["is_book"] else f"the {item['title']}"
        openers = _TITLE_OPENERS_BOOK if item["is_book"] else _TITLE_OPENERS_PRODUCT
        when = _pick(rng, _WHEN_BOOK if item["is_book"] else _WHEN_PRODUCT)
        sentence = _pick(rng, openers).format(t=title, when=when)
        sentences.append(sentence[0].upper() + sentence[1:])
    if not mention_title or rng.random() < 0.5:
        sentences.append(_pick(rng, _OPENINGS[rating]))

    used: set[str] = set()
    for feature_polarity in _feature_polarities(rng, rating):
        for _ in range(10):
            if feature_polarity in leaf and rng.random() < 0.6:
                sentence = _pick(rng, leaf[feature_polarity])
            else:
                sentence = _aspect_sentence(rng, leaf, feature_polarity)
            if sentence not in used:
                break
        used.add(sentence)
        sentences.append(sentence)

    if rng.random() < 0.4:
        branch_polarity = polarity if polarity != "mixed" else _pick(rng, ("pos", "neg"))
        sentences.append(_pick(rng, branch[branch_polarity]))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _CLOSINGS[polarity]))

    if len(sentences) > 5:
        sentences = sentences[:4] + sentences[-1:]
    if len(sentences) >= 3 and rng.random() < _NEWLINE_PROB:
        cut = int(rng.integers(1, len(sentences)))
        return " ".join(sentences[:cut]) + "\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


def _timestamps(rng: np.random.Generator, n: int) -> list[int]:
    """n strictly increasing unix timestamps inside the demo window."""
    total = _T_END - _T_START
    span = int(total * rng.uniform(0.25, 1.0))
    start = _T_START + int(rng.uniform(0.0, 1.0) * (total - span))
    offsets = np.sort(rng.choice(span + 1, size=n, replace=False))  # distinct seconds
    return [start + int(x) for x in offsets]


def _plan_user(
    rng: np.random.Generator,
    picker: _ItemPicker,
    fav: tuple[str, str, str],
    disliked_l1: str | None,
    n_reviews: int,
) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
    """Choose the (item, role) pairs of one non-cold user.

    Returns the pairs and the disliked L1 actually used (None if no room was left).
    """
    fav_l1, fav_l2, fav_l3 = fav
    n_fav = min(n_reviews, max(math.ceil(rng.uniform(0.60, 0.75) * n_reviews), n_reviews // 2 + 1))
    n_rest = n_reviews - n_fav
    n_dis = 0
    if disliked_l1 is not None:
        n_dis = min(int(rng.integers(1, 4)), n_rest)
        if n_dis == 0:
            disliked_l1 = None
    n_noise = n_rest - n_dis

    # Favourite L2 holds most of the favourite-L1 reviews; favourite L3 most of those.
    fav_leaf = (fav_l1, fav_l2, fav_l3)
    sibling_leaves = [
        (fav_l1, fav_l2, l3) for l3 in _TREE[fav_l1][fav_l2]["leaves"] if l3 != fav_l3
    ]
    n_l2 = math.ceil(rng.uniform(0.60, 0.80) * n_fav)
    n_l3 = min(math.ceil(rng.uniform(0.55, 0.75) * n_l2), picker.available(fav_leaf))
    n_sib = min(n_l2 - n_l3, max(n_l3 - 1, 0), sum(picker.available(s) for s in sibling_leaves))
    n_other_l2 = n_fav - n_l3 - n_sib

    plan: list[tuple[dict[str, Any], str]] = []
    plan += [(it, "favourite") for it in picker.take([fav_leaf], n_l3)]
    plan += [(it, "favourite") for it in picker.take(sibling_leaves, n_sib)]
    other_l2_leaves = [leaf for leaf in _leaf_paths() if leaf[0] == fav_l1 and leaf[1] != fav_l2]
    for _ in range(n_other_l2):
        leaf = _pick(rng, other_l2_leaves)
        rest = [lf for lf in other_l2_leaves if lf != leaf]
        plan += [(it, "favourite_l1_other") for it in picker.take([leaf, *rest], 1)]

    if disliked_l1 is not None:
        dis_leaves = [leaf for leaf in _leaf_paths() if leaf[0] == disliked_l1]
        for _ in range(n_dis):
            leaf = _pick(rng, dis_leaves)
            rest = [lf for lf in dis_leaves if lf != leaf]
            plan += [(it, "disliked") for it in picker.take([leaf, *rest], 1)]

    noise_leaves = [leaf for leaf in _leaf_paths() if leaf[0] not in (fav_l1, disliked_l1)]
    for _ in range(n_noise):
        leaf = _pick(rng, noise_leaves)
        rest = [lf for lf in noise_leaves if lf[0] == leaf[0] and lf != leaf]
        plan += [(it, "noise") for it in picker.take([leaf, *rest], 1)]
    return plan, disliked_l1


def _ratings_for(rng: np.random.Generator, roles: list[str]) -> list[int]:
    """Draw a rating per role, then lift favourite-L1 ratings until their mean is >= 4."""
    specs = {
        "favourite": _RATINGS_FAVOURITE,
        "favourite_l1_other": _RATINGS_FAVOURITE_L1_OTHER,
        "cold": _RATINGS_COLD,
        "disliked": _RATINGS_DISLIKED,
        "noise": _RATINGS_NOISE,
    }
    ratings = [_draw_rating(rng, specs[role]) for role in roles]
    fav_idx = [i for i, role in enumerate(roles) if role in ("favourite", "favourite_l1_other")]
    while fav_idx and sum(ratings[i] for i in fav_idx) < 4 * len(fav_idx):
        lowest = min(fav_idx, key=lambda i: (ratings[i], i))
        ratings[lowest] += 1
    return ratings


def generate_demo_reviews(seed: int = 7, n_users: int = 300) -> tuple[list[dict], dict]:
    """Generate the demo reviews and the interests planted in them.

    Args:
        seed: Seed of the ``numpy.random.default_rng`` that drives every choice.
        n_users: Number of users (ids ``U0001``...). At least 1.

    Returns:
        ``(rows, planted)``. ``rows`` is a list of dicts with the keys of
        ``CSV_COLUMNS`` (``rating`` and ``timestamp`` are ints), sorted by
        ``(user_id, timestamp)``. ``planted`` is a JSON-ready dict with ``seed``,
        ``n_users``, ``users`` (per user: ``favourite_l1``, ``favourite_l2``,
        ``favourite_l3`` as full paths, ``disliked_l1`` or None, ``cold``) and
        ``categories`` (every L3 path).

    Raises:
        ValueError: If ``n_users`` is below 1.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}; pass a positive user count.")
    rng = np.random.default_rng(seed)
    items = _build_catalog(rng)
    leaves = _leaf_paths()
    l1s = list(_TREE)

    # Favourite L1s spread evenly over the categories, in random user order.
    fav_l1s = [l1s[i % len(l1s)] for i in range(n_users)]
    fav_l1s = [fav_l1s[int(i)] for i in rng.permutation(n_users)]
    n_cold = round(_COLD_SHARE * n_users)
    cold_users = {int(i) for i in rng.permutation(n_users)[:n_cold]}

    rows: list[dict[str, Any]] = []
    planted_users: dict[str, dict[str, Any]] = {}
    texts: set[str] = set()
    for u in range(n_users):
        user_id = f"U{u + 1:04d}"
        fav_l1 = fav_l1s[u]
        fav_l2 = _pick(rng, list(_TREE[fav_l1]))
        fav_l3 = _pick(rng, list(_TREE[fav_l1][fav_l2]["leaves"]))
        picker = _ItemPicker(rng, items)
        cold = u in cold_users
        if cold:
            plan = [(it, "cold") for it in picker.take([(fav_l1, fav_l2, fav_l3)], 1)]
            disliked_l1 = None
        else:
            disliked_l1 = None
            if rng.random() < 0.5:
                disliked_l1 = _pick(rng, [l1 for l1 in l1s if l1 != fav_l1])
            n_reviews = int(rng.integers(_MIN_REVIEWS, _MAX_REVIEWS + 1))
            plan, disliked_l1 = _plan_user(
                rng, picker, (fav_l1, fav_l2, fav_l3), disliked_l1, n_reviews
            )
        ratings = _ratings_for(rng, [role for _, role in plan])
        order = rng.permutation(len(plan))  # interests interleave over time
        times = _timestamps(rng, len(plan))
        for t, j in zip(times, order, strict=True):
            item, _role = plan[int(j)]
            rating = ratings[int(j)]
            text = _compose_text(rng, item, rating)
            for _ in range(20):
                if text not in texts:
                    break
                text = _compose_text(rng, item, rating)
            texts.add(text)
            rows.append(
                {
                    "user_id": user_id,
                    "item_id": item["item_id"],
                    "text": text,
                    "rating": rating,
                    "timestamp": t,
                    "category": item["category"],
                    "item_title": item["title"],
                }
            )
        planted_users[user_id] = {
            "favourite_l1": fav_l1,
            "favourite_l2": _path(fav_l1, fav_l2),
            "favourite_l3": _path(fav_l1, fav_l2, fav_l3),
            "disliked_l1": disliked_l1,
            "cold": cold,
        }

    rows.sort(key=lambda r: (r["user_id"], r["timestamp"], r["item_id"]))
    planted = {
        "seed": seed,
        "n_users": n_users,
        "users": planted_users,
        "categories": [_path(*leaf) for leaf in leaves],
    }
    logger.info(
        "generated %d demo reviews: %d users (%d cold), %d items reviewed",
        len(rows),
        n_users,
        n_cold,
        len({r["item_id"] for r in rows}),
    )
    return rows, planted


def write_demo_dataset(out_dir: Path, seed: int = 7, n_users: int = 300) -> tuple[Path, Path]:
    """Generate the demo dataset and write ``reviews.csv`` and ``planted.json``.

    Args:
        out_dir: Folder to write into; created if missing.
        seed: Seed passed to :func:`generate_demo_reviews`.
        n_users: Number of users passed to :func:`generate_demo_reviews`.

    Returns:
        ``(csv_path, planted_path)``.
    """
    rows, planted = generate_demo_reviews(seed=seed, n_users=n_users)
    return _write(Path(out_dir), rows, planted)


def _write(out_dir: Path, rows: list[dict], planted: dict) -> tuple[Path, Path]:
    """Write rows as ``reviews.csv`` and planted truth as ``planted.json`` into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "reviews.csv"
    planted_path = out_dir / "planted.json"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=list(CSV_COLUMNS), quoting=csv.QUOTE_MINIMAL, lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    planted_path.write_text(
        json.dumps(planted, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s and %s", csv_path, planted_path)
    return csv_path, planted_path


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: ``python -m mgi_core.data.demo OUT_DIR``."""
    parser = argparse.ArgumentParser(description="Write the MGI demo review dataset.")
    parser.add_argument("out_dir", type=Path, help="folder for reviews.csv and planted.json")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--n-users", type=int, default=300, help="number of users (default 300)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows, planted = generate_demo_reviews(seed=args.seed, n_users=args.n_users)
    csv_path, planted_path = _write(args.out_dir, rows, planted)
    per_l1 = Counter(r["category"].split(CATEGORY_SEPARATOR)[0] for r in rows)
    n_cold = sum(1 for u in planted["users"].values() if u["cold"])
    print(f"wrote {csv_path} and {planted_path}")
    print(
        f"{len(rows)} reviews, {len(planted['users'])} users ({n_cold} cold), "
        f"{len({r['item_id'] for r in rows})} items"
    )
    for l1, count in sorted(per_l1.items()):
        print(f"  {l1}: {count}")


if __name__ == "__main__":
    main()
