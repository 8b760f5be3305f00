"""Writes `pairs.jsonl`, the labelled set `run.py` measures the threshold and the guard on.

    .venv/bin/python bench/semantic/pairs.py   # rewrites bench/semantic/pairs.jsonl

Every pair was written by hand for this set (the entity and number swaps fill a few templates
with hand-picked values); none was drawn from the guard's own word lists, so several near misses
use opposites and names the guard does not know, and the measured recall and precision are not
the guard grading its own homework. `same` is true only when one cached answer would serve both.
Kinds: paraphrase (same), negation, antonym, entity, number, topic (different). `set` is `dev`
(the guard was revised once after a first run on these) or `held-out` (written after that, never
used to change the guard).
"""

from __future__ import annotations

import json
from pathlib import Path

PARAPHRASE = """
How do I reset my password? | How can I change my password?
How do I enable two-factor authentication? | How can I turn on 2FA for my account?
What is the capital of France? | Which city is the capital of France?
How do I cancel my subscription? | How can I stop my subscription?
What's the weather like in London today? | How is the weather in London today?
How do I delete my account? | How can I remove my account permanently?
Can you summarise this article? | Please give me a summary of this article.
How do I sort a list in Python? | What's the way to sort a Python list?
What is the boiling point of water? | At what temperature does water boil?
How many days are in a leap year? | How many days does a leap year have?
Who wrote Pride and Prejudice? | Who is the author of Pride and Prejudice?
How do I update my billing address? | How can I change the billing address on my account?
What are the symptoms of the flu? | What symptoms does the flu cause?
How do I make pancakes? | What's a good way to make pancakes?
Explain how photosynthesis works. | How does photosynthesis work?
How can I improve my sleep? | What can I do to sleep better?
What is machine learning? | Can you explain what machine learning is?
How do I export my contacts? | How can I export all my contacts?
Why is the sky blue? | What makes the sky look blue?
How do I reverse a string in JavaScript? | What's the way to reverse a string in JavaScript?
Translate "good morning" into Spanish. | How do you say "good morning" in Spanish?
What time does the store open on Sunday? | When does the store open on Sunday?
How do I check my account balance? | How can I see my account balance?
Give me a recipe for banana bread. | Can you share a banana bread recipe?
What is the difference between TCP and UDP? | How do TCP and UDP differ?
How do I create a virtual environment in Python? | How can I make a Python virtual environment?
What does HTTP stand for? | What is HTTP short for?
How do I install Docker on Ubuntu? | What are the steps to install Docker on Ubuntu?
How long should I boil an egg? | For how long do I boil an egg?
Is it safe to drink tap water in Tokyo? | Can I safely drink the tap water in Tokyo?
How do I merge two dictionaries in Python? | What's the best way to combine two dicts in Python?
What is the tallest mountain in the world? | Which mountain is the highest on Earth?
How can I get a refund? | How do I request a refund?
How do I change the language of the app? | How can I switch the app to another language?
What are good exercises for back pain? | Which exercises help with back pain?
Tell me a joke. | Can you tell me a joke?
How do I undo the last git commit? | How can I revert my most recent git commit?
What is the population of Canada? | How many people live in Canada?
How do I connect my printer to Wi-Fi? | How can I get my printer onto the Wi-Fi network?
Why does my phone battery drain so fast? | What makes my phone's battery run down so quickly?
Write a haiku about autumn. | Compose a haiku about autumn.
How do I track my order? | Where can I track my order?
What is the meaning of life? | What's the meaning of life?
How do I center a div in CSS? | How can I center a div with CSS?
What is inflation? | Can you explain what inflation is?
How do I take a screenshot on a Mac? | How can I capture a screenshot on my Mac?
What are the benefits of meditation? | Why is meditation good for you?
How do I find the length of a list in Python? | How can I get the number of items in a Python list?
Who painted the Mona Lisa? | Which artist painted the Mona Lisa?
How do I clear my browser cache? | How can I empty the cache in my browser?
What's a healthy breakfast? | What should I eat for a healthy breakfast?
How much water should I drink each day? | How many glasses of water should I drink a day?
How do I write a cover letter? | What's the best way to write a cover letter?
What is the speed of light? | How fast does light travel?
How do I read a CSV file in pandas? | How can I load a CSV file with pandas?
Why do cats purr? | What makes cats purr?
How do I change my username? | Can I change my username, and how?
What is a black hole? | Can you explain what a black hole is?
How do I contact customer support? | How can I reach customer support?
Recommend a good book on history. | Can you suggest a good history book?
How do I fix a leaking tap? | How can I repair a dripping faucet?
What is the GDP of Japan? | How large is Japan's GDP?
How do I list files in a directory in Linux? | What's the Linux command to list the files in a directory?
What are the rules of chess? | How do you play chess?
How do I grow tomatoes? | What's the best way to grow tomatoes?
How do I upgrade my plan? | How can I move to a higher plan?
Where is the Eiffel Tower? | In which city is the Eiffel Tower located?
What causes earthquakes? | Why do earthquakes happen?
How do I format a date in JavaScript? | How can I format dates in JavaScript?
How do I apply for a passport? | What's the process for applying for a passport?
What does a product manager do? | What is the job of a product manager?
How do I calculate compound interest? | What is the formula for compound interest?
Suggest a name for my dog. | Can you suggest a name for my dog?
How do I open a bank account? | What do I need to do to open a bank account?
How do I stop my screen from turning off? | How can I keep my screen from going to sleep?
What is the best way to learn a language? | How should I go about learning a new language?
What is Kubernetes? | Can you explain what Kubernetes is?
How do I make cold brew coffee? | What's the method for making cold brew coffee?
How do I parse JSON in Go? | How can I decode JSON in Go?
When was the Declaration of Independence signed? | In what year was the Declaration of Independence signed?
How do I lower my cholesterol? | What can I do to reduce my cholesterol?
What is the difference between a virus and bacteria? | How are viruses different from bacteria?
How do I set up a new email account? | How can I create a new email account?
What is a good gift for a teenager? | What should I buy a teenager as a present?
How do I get rid of fruit flies? | How can I eliminate fruit flies in my kitchen?
What is the largest ocean? | Which ocean is the biggest?
How do I share my screen on Zoom? | How can I share my screen in a Zoom meeting?
What is the chemical formula of water? | What's water's chemical formula?
How do I write a for loop in Rust? | How can I loop over a range in Rust?
Why is my internet so slow? | What could be making my internet connection slow?
What's the best time to visit Japan? | When is the best season to travel to Japan?
How do I convert a string to an integer in Java? | How can I turn a string into an int in Java?
Explain quantum computing in simple terms. | Can you explain quantum computing simply?
How do I join a table in SQL? | How do SQL joins work?
What is the plot of Hamlet? | Can you summarise the story of Hamlet?
How do I remove a stain from a shirt? | How can I get a stain out of my shirt?
What is a Roth IRA? | Can you explain what a Roth IRA is?
What are the side effects of ibuprofen? | Which side effects can ibuprofen have?
How do I change a flat tyre? | How can I replace a flat tire?
How do I add a new user on Linux? | What's the command to create a user account on Linux?
What is the square root of 144? | What's the square root of 144?
How many continents are there? | What is the number of continents?
How do I back up my iPhone? | How can I make a backup of my iPhone?
What is the best programming language for beginners? | Which programming language should a beginner learn first?
How do I write unit tests in Python? | How can I test my Python code with unit tests?
What is the difference between weather and climate? | How does weather differ from climate?
Is coffee bad for you? | Is drinking coffee unhealthy?
How do I negotiate a higher salary? | What's the best way to ask for a raise?
How do I stop procrastinating? | How can I overcome procrastination?
How do I cook rice? | What's the way to cook rice?
What is an API? | What does API mean?
How do I print in Python? | How do you print output in Python?
What is the currency of Switzerland? | Which currency is used in Switzerland?
How do I check which version of Python I have? | How can I find out my Python version?
What is the main cause of climate change? | What mainly causes climate change?
How do I stop my dog from barking? | How can I get my dog to stop barking?
What's the fastest land animal? | Which animal is the fastest on land?
How do I split a string in Python? | How can I split a Python string into parts?
How do I improve my credit score? | What can I do to raise my credit score?
What is the Pythagorean theorem? | Can you explain the Pythagorean theorem?
How do I turn off notifications? | How can I disable notifications?
How do I rename a file in Linux? | What's the Linux command to rename a file?
What is the difference between affect and effect? | When do I use affect versus effect?
How do I make my website load faster? | How can I speed up my website?
What should I pack for a beach holiday? | What do I need to bring on a beach vacation?
How do I cancel my order? | Can I cancel the order I placed, and how?
How do I restart my router? | What's the way to reboot my router?
What is the Great Wall of China? | Tell me about the Great Wall of China.
How do I calculate my BMI? | How is BMI calculated?
What is the difference between a list and a tuple in Python? | How do lists and tuples differ in Python?
How do I write a good resume? | What makes a strong resume?
How many ounces are in a pound? | How many ounces make a pound?
What's the best way to save money? | How can I save more money?
How do I make a pivot table in Excel? | How can I create a pivot table in Excel?
Why do leaves change colour in autumn? | What makes leaves change color in the fall?
How do I get my deposit back from my landlord? | How can I recover my rental deposit from the landlord?
What is the longest river in the world? | Which river is the longest on Earth?
How do I add a signature in Gmail? | How can I set up an email signature in Gmail?
How do I prevent a cold? | What can I do to avoid catching a cold?
What does a VPN do? | What is a VPN used for?
How do I kill a process in Linux? | How can I stop a running process on Linux?
What are the primary colours? | Which colours are the primary colours?
How do I find my IP address? | How can I see what my IP address is?
Who discovered penicillin? | Who was the first to discover penicillin?
How do I remove duplicates from a list in Python? | How can I deduplicate a Python list?
"""

NEGATION = """
How do I enable notifications? | Why can't I enable notifications?
Is it safe to eat raw eggs? | Is it not safe to eat raw eggs?
Why does my laptop charge? | Why doesn't my laptop charge?
Can I take ibuprofen with alcohol? | Why shouldn't I take ibuprofen with alcohol?
Should I water cacti every day? | Should I never water cacti every day?
How do I make a cake with eggs? | How do I make a cake without eggs?
Which fruits contain vitamin C? | Which fruits contain no vitamin C?
Why is my code working? | Why is my code not working?
Does the hotel allow pets? | Does the hotel not allow pets?
Can I travel to Canada with a visa? | Can I travel to Canada without a visa?
Why does the app crash on startup? | Why doesn't the app crash on startup anymore?
Is this mushroom poisonous? | Is this mushroom not poisonous?
What foods should I eat when pregnant? | What foods should I not eat when pregnant?
How do I log in with my password? | How do I log in without my password?
Why does my dog eat grass? | Why won't my dog eat grass?
Which countries use the euro? | Which countries don't use the euro?
Is coffee good for you? | Is coffee not good for you?
How can I sleep with the lights on? | How can I sleep without the lights on?
Did the meeting happen yesterday? | Didn't the meeting happen yesterday?
Why is my phone charging? | Why isn't my phone charging?
Are vaccines required for school? | Are vaccines not required for school?
What happens if I pay my taxes? | What happens if I never pay my taxes?
Can dogs eat chocolate? | Why can dogs not eat chocolate?
What should I include in a cover letter? | What should I never include in a cover letter?
Is the store open on holidays? | Is the store not open on holidays?
Do I need a licence to fish here? | Do I not need a licence to fish here?
Which plants need sunlight? | Which plants need no sunlight?
How do I drive in snow with chains? | How do I drive in snow without chains?
Why does the printer print? | Why won't the printer print?
Is it legal to record a phone call? | Is it not legal to record a phone call?
Can I return an item with a receipt? | Can I return an item without a receipt?
How do I connect to Wi-Fi with a password? | How do I connect to Wi-Fi with no password?
Why did my package arrive? | Why hasn't my package arrived?
Is Pluto a planet? | Is Pluto not a planet?
What medications can I take with grapefruit? | What medications can't I take with grapefruit?
Why do people like cilantro? | Why do some people not like cilantro?
Is sunscreen needed in winter? | Is sunscreen not needed in winter?
Does this laptop have a webcam? | Does this laptop have no webcam?
Why do my headphones work? | Why don't my headphones work?
Can I use my card abroad? | Why can't I use my card abroad?
Is the water in this river drinkable? | Is the water in this river not drinkable?
How do I install the app with admin rights? | How do I install the app without admin rights?
Does my insurance cover dental work? | Doesn't my insurance cover dental work?
Why is the website loading? | Why is the website never loading?
What are foods that contain gluten? | What are foods that contain no gluten?
Is it possible to freeze cooked rice? | Is it never possible to freeze cooked rice?
Why does the car start? | Why won't the car start?
Should I tip the waiter in Japan? | Should I not tip the waiter in Japan?
Do cats need baths? | Don't cats need baths?
Which jobs require a degree? | Which jobs require no degree?
Why do I get emails from this sender? | Why don't I get emails from this sender?
Is the museum free on Sundays? | Is the museum not free on Sundays?
Can I eat sushi while pregnant? | Can I not eat sushi while pregnant?
How do I bake bread with a bread machine? | How do I bake bread without a bread machine?
Why is my Bluetooth connecting? | Why is my Bluetooth not connecting?
Is it rude to arrive early? | Is it not rude to arrive early?
Can I park here on weekends? | Can't I park here on weekends?
Should children drink coffee? | Should children never drink coffee?
How do I run the script with sudo? | How do I run the script without sudo?
Does the train stop at this station? | Doesn't the train stop at this station?
"""

ANTONYM = """
How do I enable two-factor authentication? | How do I disable two-factor authentication?
How do I turn on dark mode? | How do I turn off dark mode?
How do I increase the font size? | How do I decrease the font size?
How do I add a member to the team? | How do I remove a member from the team?
Should I take this medicine before meals? | Should I take this medicine after meals?
How do I install Chrome? | How do I uninstall Chrome?
How do I lock my screen? | How do I unlock my screen?
How do I encrypt a file? | How do I decrypt a file?
How do I upload a photo? | How do I download a photo?
How do I zoom in on a PDF? | How do I zoom out on a PDF?
What are the advantages of remote work? | What are the disadvantages of remote work?
How do I subscribe to the newsletter? | How do I unsubscribe from the newsletter?
How do I mute my microphone? | How do I unmute my microphone?
How can I raise my blood pressure? | How can I lower my blood pressure?
How do I show hidden files on a Mac? | How do I hide files on a Mac?
What is the maximum file size for an upload? | What is the minimum file size for an upload?
How do I start the server? | How do I stop the server?
How do I follow someone on Instagram? | How do I unfollow someone on Instagram?
How do I block a number on my phone? | How do I unblock a number on my phone?
How do I gain weight quickly? | How do I lose weight quickly?
How do I accept a meeting invitation? | How do I decline a meeting invitation?
Is it better to buy or rent a house? | Is it better to sell or rent a house?
How do I import contacts into Outlook? | How do I export contacts from Outlook?
What is the highest score in the game? | What is the lowest score in the game?
How do I connect my headphones? | How do I disconnect my headphones?
How do I freeze a row in Excel? | How do I unfreeze a row in Excel?
How do I open the terminal? | How do I close the terminal?
What is the first step to start a business? | What is the last step to start a business?
How do I expand all folders? | How do I collapse all folders?
Which is the hottest planet? | Which is the coldest planet?
How do I sign in to my account? | How do I sign out of my account?
How do I push changes to GitHub? | How do I pull changes from GitHub?
How do I archive an email? | How do I unarchive an email?
How do I maximise a window? | How do I minimise a window?
How do I speed up a video? | How do I slow down a video?
How do I attach a file to an email? | How do I detach a file from an email?
What is the easiest language to learn? | What is the hardest language to learn?
How do I compress a folder? | How do I decompress a folder?
Why is my car accelerating by itself? | Why is my car braking by itself?
How do I pause my subscription? | How do I resume my subscription?
What are the strengths of this approach? | What are the weaknesses of this approach?
How do I approve a pull request? | How do I reject a pull request?
How do I make the image brighter? | How do I make the image darker?
What are the pros of nuclear energy? | What are the cons of nuclear energy?
How do I grant admin access to a user? | How do I revoke admin access from a user?
How do I merge two cells in Excel? | How do I split a cell in Excel?
How do I activate Windows? | How do I deactivate Windows?
How do I enlarge an image? | How do I shrink an image?
What is the fastest way to heat water? | What is the fastest way to cool water?
How do I convert uppercase to lowercase? | How do I convert lowercase to uppercase?
How do I sort a list in ascending order? | How do I sort a list in descending order?
How do I encode a URL? | How do I decode a URL?
What time does the sun rise today? | What time does the sun set today?
How do I arm the alarm system? | How do I disarm the alarm system?
How do I tighten a bolt? | How do I loosen a bolt?
How do I insert a row in SQL? | How do I delete a row in SQL?
What causes high blood sugar? | What causes low blood sugar?
How do I include a file in the build? | How do I exclude a file from the build?
How do I mount a drive in Linux? | How do I unmount a drive in Linux?
Why is my house so warm? | Why is my house so cold?
How do I make the text bold? | How do I remove bold from the text?
Which foods are rich in iron? | Which foods are poor in iron?
How do I plug in the charger? | How do I unplug the charger?
How do I pin a message in Slack? | How do I unpin a message in Slack?
How do I inhale properly when running? | How do I exhale properly when running?
What is the best day to fly? | What is the worst day to fly?
How do I win at chess? | How do I lose at chess on purpose?
How do I allow cookies in Safari? | How do I block cookies in Safari?
How do I strengthen my immune system? | How do I weaken my immune system?
How do I lengthen a dress? | How do I shorten a dress?
"""

TOPIC = """
How do I reset my password? | How do I reset my router?
What is the capital of France? | What is the population of France?
How do I make pancakes? | How do I make waffles?
How do I sort a list in Python? | How do I reverse a list in Python?
What are the symptoms of the flu? | What is the treatment for the flu?
How do I cancel my subscription? | How do I pay for my subscription?
How do I install Docker on Ubuntu? | How do I configure Docker on Ubuntu?
What is the boiling point of water? | What is the freezing point of water?
Who wrote Pride and Prejudice? | When was Pride and Prejudice written?
How long should I boil an egg? | How long should I boil pasta?
How do I delete my account? | How do I verify my account?
What is machine learning? | What is deep learning?
How do I clear my browser cache? | How do I clear my browser history?
What are the side effects of ibuprofen? | What is the dose of ibuprofen?
How do I track my order? | How do I return my order?
How do I read a CSV file in pandas? | How do I write a CSV file in pandas?
What is the GDP of Japan? | What is the population of Japan?
How do I change a flat tyre? | How do I check my tyre pressure?
What is a Roth IRA? | What is a 401(k)?
How do I write unit tests in Python? | How do I write docstrings in Python?
Why is the sky blue? | Why is the ocean blue?
How do I take a screenshot on a Mac? | How do I record my screen on a Mac?
What does HTTP stand for? | What does HTTPS add to HTTP?
How do I join a table in SQL? | How do I index a table in SQL?
How do I back up my iPhone? | How do I update my iPhone?
What is the speed of light? | What is the speed of sound?
How do I grow tomatoes? | When should I harvest tomatoes?
How do I calculate compound interest? | How do I calculate simple interest?
How do I lower my cholesterol? | What is a normal cholesterol level?
How do I rename a file in Linux? | How do I copy a file in Linux?
What is the longest river in the world? | What is the deepest lake in the world?
How do I kill a process in Linux? | How do I list processes in Linux?
How do I share my screen on Zoom? | How do I record a meeting on Zoom?
What is the currency of Switzerland? | What is the language of Switzerland?
How do I make cold brew coffee? | How do I make espresso?
What are good exercises for back pain? | What are good stretches for neck pain?
How do I find my IP address? | How do I change my IP address?
How do I apply for a passport? | How do I renew my driving licence?
How do I fix a leaking tap? | How do I unclog a drain?
What is a black hole? | What is a neutron star?
How do I improve my credit score? | How do I check my credit score?
Who painted the Mona Lisa? | Where is the Mona Lisa displayed?
How do I split a string in Python? | How do I join strings in Python?
How do I parse JSON in Go? | How do I handle errors in Go?
How do I write a cover letter? | How do I prepare for an interview?
How do I get rid of fruit flies? | How do I get rid of ants?
What is inflation? | What is a recession?
How do I change my username? | How do I change my profile picture?
How do I cook rice? | How much water do I need for rice?
What is Kubernetes? | What is a Kubernetes pod?
"""

# Templates with hand-picked swaps: (text with {}, [(x, y), ...]).
ENTITY = [
    (
        "What is the capital of {}?",
        [
            ("France", "Germany"),
            ("Spain", "Portugal"),
            ("Japan", "China"),
            ("Canada", "Australia"),
            ("Italy", "Greece"),
            ("Brazil", "Argentina"),
            ("Egypt", "Morocco"),
            ("Norway", "Sweden"),
        ],
    ),
    (
        "How do I sort a list in {}?",
        [("Python", "Java"), ("Ruby", "Go"), ("C#", "Kotlin"), ("JavaScript", "TypeScript")],
    ),
    (
        "What is the population of {}?",
        [("Tokyo", "Osaka"), ("London", "Manchester"), ("Texas", "California"), ("Lagos", "Nairobi")],
    ),
    (
        "How do I install {} on Windows?",
        [("Docker", "Podman"), ("PostgreSQL", "MySQL"), ("Node.js", "Deno"), ("Git", "Mercurial")],
    ),
    ("Who is the CEO of {}?", [("Microsoft", "Apple"), ("Tesla", "Ford"), ("Amazon", "Netflix"), ("Nvidia", "Intel")]),
    (
        "What is the time difference between {} and New York?",
        [("Paris", "Sydney"), ("Dubai", "Singapore"), ("Berlin", "Mumbai")],
    ),
    ("How do I convert a PDF to {}?", [("Word", "Excel"), ("JPEG", "PNG"), ("EPUB", "HTML")]),
    (
        "What are the visa requirements for {}?",
        [("Thailand", "Vietnam"), ("India", "Indonesia"), ("Kenya", "Tanzania")],
    ),
    (
        "Summarise the novel {} for me.",
        [("Moby Dick", "War and Peace"), ("Dune", "Foundation"), ("Emma", "Persuasion")],
    ),
    ("How do I reset my {} password?", [("Gmail", "Outlook"), ("Netflix", "Spotify"), ("Slack", "Zoom")]),
    ("What is the tallest building in {}?", [("Dubai", "Shanghai"), ("Chicago", "Toronto")]),
    ("Who won the {} World Cup?", [("2018", "2022")]),
    ("Translate 'thank you' into {}.", [("French", "Italian"), ("German", "Dutch"), ("Korean", "Japanese")]),
    ("How many calories are in a {}?", [("banana", "apple"), ("bagel", "croissant"), ("avocado", "mango")]),
    ("What does the error {} mean in Python?", [("'KeyError'", "'IndexError'"), ("'TypeError'", "'ValueError'")]),
    ("Is {} a good place to live?", [("Denver", "Austin"), ("Lisbon", "Porto"), ("Vancouver", "Calgary")]),
    ("Who is {}'s father in the story?", [("Simba", "Nala"), ("Hamlet", "Ophelia")]),
    ("What is the best way to learn {}?", [("Spanish", "Mandarin"), ("guitar", "piano"), ("Rust", "Haskell")]),
    ("How do I connect {} to my TV?", [("an iPhone", "an Android phone"), ("a PS5", "an Xbox")]),
    ("How do I cook {} in an air fryer?", [("salmon", "chicken"), ("potatoes", "broccoli")]),
]

NUMBER = [
    ("List the top {} movies of all time.", [("5", "10"), ("three", "seven"), ("20", "50")]),
    ("What is {} times 12?", [("7", "8"), ("13", "14"), ("25", "30")]),
    ("What happened in {}?", [("1969", "1989"), ("1914", "1939"), ("2001", "2008")]),
    ("Convert {} dollars to euros.", [("100", "1000"), ("50", "500"), ("20", "25")]),
    ("Give me {} ideas for a birthday party.", [("3", "5"), ("ten", "twenty")]),
    ("What is the square root of {}?", [("144", "169"), ("2", "3"), ("81", "64")]),
    ("Is {} a prime number?", [("91", "97"), ("51", "53"), ("1001", "1009")]),
    ("What's the weather forecast for the next {} days?", [("3", "7"), ("5", "10")]),
    ("How do I say {} in French?", [("the number 15", "the number 16")]),
    ("What is the {}th digit of pi?", [("10", "100"), ("5", "50")]),
    ("Write a {}-word summary of this article.", [("50", "100"), ("200", "500")]),
    ("How many calories do I burn running {} km?", [("5", "10"), ("3", "21")]),
    ("What was the exchange rate in {}?", [("2010", "2020"), ("1999", "2005")]),
    ("Explain chapter {} of the book.", [("3", "4"), ("1", "12")]),
    ("Set an alarm for {} am.", [("6", "7"), ("5:30", "6:30")]),
    ("What is the iPhone {} battery capacity?", [("14", "15"), ("12", "13")]),
    ("How much is a {} pound turkey to cook?", [("12", "20")]),
    ("Is {}% a good interest rate?", [("5", "15"), ("3.5", "6.5")]),
]

# Written after the guard was last changed (commit f7db12b), and never used to change it: the
# dev pairs above were, after the first run (bench/semantic/README.md). run.py chooses the
# threshold on the dev pairs and reports the held-out ones at that threshold.
HELD_PARAPHRASE = """
How do I unsubscribe from your emails? | How can I stop getting your marketing emails?
What's the best way to clean a cast iron pan? | How should I clean a cast-iron skillet?
How do I change the oil in my car? | What are the steps for an oil change on my car?
Why does my knee hurt when I run? | What causes knee pain while running?
How can I tell if an egg is still fresh? | How do I check whether an egg has gone bad?
How do I set a default printer in Windows? | How can I make a printer the default one in Windows?
What is the distance from the Earth to the Moon? | How far away is the Moon from the Earth?
How do I write a haiku? | What are the rules for writing a haiku?
How long does it take to learn to drive? | How much time does learning to drive usually take?
How do I repot a plant? | What's the right way to move a plant into a new pot?
What is a mortgage? | Can you explain what a mortgage is?
How do I concatenate strings in Java? | How can I join two strings together in Java?
Which vitamins are in spinach? | What vitamins does spinach contain?
How do I make my code run faster in Python? | How can I speed up my Python code?
What does DNA stand for? | What is DNA short for?
How do I freeze fresh herbs? | What's the best way to freeze herbs?
How do I get a library card? | How can I sign up for a library card?
What should I do if my dog is vomiting? | My dog keeps throwing up, what should I do?
How do I make a budget? | How can I create a personal budget?
How do I sharpen a kitchen knife? | What's the way to sharpen a kitchen knife?
Who invented the telephone? | Who was the inventor of the telephone?
How do I get better at public speaking? | How can I improve my public speaking skills?
What is the best way to store bananas? | How should I store bananas so they last?
How do I count words in a document in Word? | How can I see the word count in Word?
How do I calm down before an exam? | How can I reduce anxiety before a test?
What are the planets in our solar system? | Which planets are in the solar system?
How do I make a smoothie? | What's a simple way to make a smoothie?
What is an index fund? | Can you explain index funds?
How do I fix a squeaky door? | How can I stop a door from squeaking?
How do I check if a number is even in Python? | How can I test whether a number is even in Python?
What is the origin of Halloween? | Where does Halloween come from?
How do I make friends in a new city? | How can I meet people after moving to a new city?
What is the difference between baking soda and baking powder? | How is baking soda different from baking powder?
How do I set up a monthly recurring payment? | How can I schedule a payment to repeat every month?
How do I know if I have a cavity? | What are the signs of a cavity?
What does a blockchain do? | How does blockchain technology work?
How do I delete a branch in git? | How can I remove a git branch?
How do I find the area of a circle? | What is the formula for a circle's area?
How do I keep my cat off the counter? | How can I stop my cat from jumping on the kitchen counter?
Why do onions make you cry? | What makes people cry when cutting onions?
"""

HELD_NEGATION = """
Can I bring food on the plane? | Can't I bring food on the plane?
Why is the dishwasher draining? | Why is the dishwasher not draining?
Is it okay to run every day? | Is it not okay to run every day?
How do I make coffee with a filter? | How do I make coffee without a filter?
Should I salt the pasta water? | Should I never salt the pasta water?
Why does my mic pick up sound? | Why doesn't my mic pick up sound?
Which fish are safe to eat raw? | Which fish are not safe to eat raw?
Do I need a passport for Mexico? | Don't I need a passport for Mexico?
Why is the fridge cooling? | Why isn't the fridge cooling?
Are tomatoes fruits? | Are tomatoes not fruits?
How do I sign the form with a pen? | How do I sign the form without a pen?
Does the gym have showers? | Does the gym have no showers?
"""

HELD_ANTONYM = """
How do I turn on location services? | How do I turn off location services?
How do I increase the volume on my TV? | How do I decrease the volume on my TV?
How do I show the ribbon in Excel? | How do I hide the ribbon in Excel?
How do I add a printer? | How do I remove a printer?
Should I stretch before running? | Should I stretch after running?
How do I enable cookies in Chrome? | How do I disable cookies in Chrome?
How do I speed up my metabolism? | How do I slow down my metabolism?
What is the warmest month in Iceland? | What is the coldest month in Iceland?
How do I open a port on my router? | How do I close a port on my router?
How do I raise the bed of my truck? | How do I lower the bed of my truck?
How do I widen a shoe? | How do I shrink a shoe?
How do I thicken a soup? | How do I thin a soup?
How do I encourage my child to read? | How do I discourage my child from reading?
What are the upsides of a gap year? | What are the downsides of a gap year?
How do I soften butter quickly? | How do I harden butter quickly?
"""

HELD_TOPIC = """
How do I change the oil in my car? | How do I change the tyres on my car?
What is a mortgage? | What is a mortgage broker?
How do I freeze fresh herbs? | How do I dry fresh herbs?
Who invented the telephone? | When was the telephone invented?
How do I delete a branch in git? | How do I rename a branch in git?
What are the planets in our solar system? | What is the biggest planet in our solar system?
How do I make a smoothie? | How do I make a milkshake?
How do I sharpen a kitchen knife? | How do I sharpen scissors?
What does DNA stand for? | What does RNA do?
How do I fix a squeaky door? | How do I fix a sticking door?
What is an index fund? | What is a hedge fund?
"""

HELD_ENTITY = [
    ("What is the national dish of {}?", [("Peru", "Chile"), ("Hungary", "Poland")]),
    ("How do I get from the airport to {} city centre?", [("Lisbon", "Madrid"), ("Prague", "Vienna")]),
    ("How do I install {} on a Mac?", [("Homebrew", "MacPorts"), ("Python", "Ruby")]),
    ("When did {} become president?", [("Lincoln", "Grant"), ("Obama", "Biden")]),
    ("How do I make {} at home?", [("kimchi", "sauerkraut"), ("ramen", "pho")]),
    ("What is the weather like in {} in March?", [("Bali", "Phuket"), ("Iceland", "Norway")]),
]

HELD_NUMBER = [
    ("What is {} divided by 4?", [("48", "52"), ("100", "1000")]),
    ("Write a poem with {} lines.", [("4", "8"), ("ten", "twelve")]),
    ("What happened in the year {}?", [("1066", "1215"), ("1492", "1776")]),
    ("How many calories are in {} grams of rice?", [("100", "200")]),
    ("Book a table for {} people.", [("2", "4"), ("six", "eight")]),
]


def lines(block: str, kind: str, same: bool) -> list[dict[str, object]]:
    out = []
    for line in block.strip().splitlines():
        a, b = (s.strip() for s in line.split(" | "))
        out.append({"a": a, "b": b, "same": same, "kind": kind})
    return out


def swaps(templates: list[tuple[str, list[tuple[str, str]]]], kind: str) -> list[dict[str, object]]:
    return [
        {"a": t.format(x), "b": t.format(y), "same": False, "kind": kind} for t, pairs in templates for x, y in pairs
    ]


def main() -> None:
    rows = lines(PARAPHRASE, "paraphrase", True) + lines(NEGATION, "negation", False)
    rows += lines(ANTONYM, "antonym", False) + swaps(ENTITY, "entity") + swaps(NUMBER, "number")
    rows += lines(TOPIC, "topic", False)
    held = lines(HELD_PARAPHRASE, "paraphrase", True) + lines(HELD_NEGATION, "negation", False)
    held += lines(HELD_ANTONYM, "antonym", False) + swaps(HELD_ENTITY, "entity") + swaps(HELD_NUMBER, "number")
    held += lines(HELD_TOPIC, "topic", False)
    rows = [{**r, "set": "dev"} for r in rows] + [{**r, "set": "held-out"} for r in held]
    path = Path(__file__).with_name("pairs.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r['set']} {r['kind']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(rows)} pairs in {path}: {counts}")


if __name__ == "__main__":
    main()
