"""Indian given names, surnames and middle names by region, for the search benchmark's
million patients (bench/patients_1m.py).

Each region lists male and female given names, surnames and middle names, roughly in
order of how common they are there (the generator favours the front of each list, so
"Kumar" and "Lakshmi" recur far more than "Kripalani"). Spelling variants that
app/services/names.py folds together are deliberately both present (Lakshmi/Laxmi,
Mohammed/Muhammad, Preeti/Priti, Chaudhary/Choudhury…): real registers contain both.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    name: str
    weight: float  # share of patients whose family comes from here
    male: tuple[str, ...]
    female: tuple[str, ...]
    surnames: tuple[str, ...]
    middle_male: tuple[str, ...] = ()
    middle_female: tuple[str, ...] = ()
    initials: bool = False  # South Indian style: an initial before the given name ("K. Ramesh")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


REGIONS: tuple[Region, ...] = (
    Region(
        "Hindi belt", 0.30,
        male=_words("""Rajesh Amit Sunil Ramesh Suresh Anil Sanjay Manoj Vijay Ravi Rakesh Mukesh Deepak Ajay
            Pankaj Dinesh Rahul Vikas Ashok Pradeep Sandeep Mahesh Manish Vinod Naveen Arun Rohit Alok Ankit
            Gaurav Abhishek Aditya Akash Anand Anuj Arjun Harish Hemant Jitendra Kamal Karan Nitin Pawan
            Prakash Sachin Satish Shyam Tarun Varun Vikram Vivek Yogesh Rajendra Surendra Narendra Devendra
            Mohit Sumit Vishal Ritesh Aarav Ramesh Shailendra Brijesh Umesh Dharmendra Lalit"""),
        female=_words("""Sunita Anita Pooja Priya Neha Kavita Rekha Geeta Gita Seema Suman Sangeeta Jyoti Meena
            Manisha Preeti Priti Nisha Poonam Aarti Anjali Ankita Archana Asha Deepa Divya Komal Monika Renu
            Ritu Sarita Shweta Sneha Sonia Sushma Usha Vandana Savita Kusum Kamla Shanti Radha Sita Seeta Mamta
            Nidhi Payal Swati Shalini Laxmi Rani Pinki Kiran Babita Rachna"""),
        surnames=_words("""Kumar Sharma Singh Yadav Gupta Verma Mishra Pandey Tiwari Srivastava Shukla Dubey
            Tripathi Saxena Chauhan Agarwal Aggarwal Jain Rajput Thakur Chaudhary Choudhary Bansal Goyal Mittal
            Garg Joshi Prasad Sinha Jha Gautam Meena Soni Kushwaha Maurya Rathore Bhardwaj Dixit Awasthi Bajpai
            Chaturvedi Upadhyay Pathak Ojha Dwivedi Negi Rawat Bisht Pant Rana Tomar Kaushik Saini Paswan Mahto
            Nishad Gurjar Shekhawat Kapoor Khanna Malhotra Mehra Arora Bhatia Chopra Sethi Ahuja Tandon Rastogi"""),
        middle_male=_words("Kumar Prasad Lal Chandra Nath Narayan Mohan Shankar Pratap Singh"),
        middle_female=_words("Devi Kumari Rani"),
    ),
    Region(
        "Punjab", 0.05,
        male=_words("""Gurpreet Harpreet Jaswinder Manpreet Harjinder Kuldeep Balwinder Gurdeep Sukhwinder
            Amarjeet Paramjit Jagdeep Ranjit Harbhajan Navdeep Inderjit Gurmeet Satnam"""),
        female=_words("""Harpreet Gurpreet Manjeet Simran Jasleen Parminder Rajwinder Kulwinder Amandeep
            Navneet Jaspreet Sukhpreet Baljeet Ravneet"""),
        surnames=_words("""Singh Gill Sandhu Sidhu Dhillon Grewal Brar Bains Bajwa Randhawa Cheema Ahluwalia
            Walia Bedi Sodhi Bhullar Virk Mann Sekhon Kang"""),
        middle_male=_words("Singh"),
        middle_female=_words("Kaur"),
    ),
    Region(
        "Tamil Nadu", 0.09,
        male=_words("""Murugan Senthil Karthik Saravanan Balaji Ganesh Venkatesh Srinivasan Subramanian Raghavan
            Narayanan Krishnan Gopal Sivakumar Anbu Arumugam Rajkumar Prabhu Selvam Ramesh Kumaran Vignesh
            Dinesh Sathish Manikandan Elango Thirumalai Palani"""),
        female=_words("""Lakshmi Meenakshi Saraswathi Padma Kamala Vijayalakshmi Bhavani Revathi Kavitha Sumathi
            Malathi Shanthi Selvi Chitra Geetha Jayanthi Parvathi Sowmya Deepa Priya Anitha Valli Mallika
            Amudha Tamilselvi"""),
        surnames=_words("""Krishnan Subramanian Iyer Iyengar Raman Natarajan Pillai Mudaliar Chettiar Nadar
            Gounder Thevar Murugesan Rajendran Sundaram Venkatesan Balasubramanian Ramasamy Palanisamy
            Shanmugam Annamalai Kannan Selvaraj Arumugam Perumal Rajagopal Swaminathan"""),
        initials=True,
    ),
    Region(
        "Andhra and Telangana", 0.08,
        male=_words("""Srinivas Venkatesh Ramakrishna Satyanarayana Nageswara Vamsi Srikanth Chaitanya Naresh
            Ravi Sai Suresh Mahesh Kiran Praveen Raju Narasimha Venkata Anjaneyulu Subba Prasad Harsha"""),
        female=_words("""Lakshmi Padmavathi Anusha Swapna Sravani Lavanya Haritha Sirisha Nagamma Yellamma
            Sujatha Madhavi Radhika Bhargavi Sunitha Kalyani Vani Durga Aruna"""),
        surnames=_words("""Reddy Naidu Rao Chowdary Raju Varma Setty Goud Yadav Rayudu Vemula Kondapalli
            Gudivada Pasupuleti Bollineni Tummala Yarlagadda Nalluri Chintalapudi Kotha Gorantla Kandula
            Boddu Maddala"""),
        initials=True,
    ),
    Region(
        "Karnataka", 0.08,
        male=_words("""Manjunath Basavaraj Shivakumar Chandrashekar Raghavendra Mallikarjun Siddappa Nagaraj
            Venugopal Prakash Ramesh Suresh Girish Umesh Santosh Harish Lokesh Shashidhar Praveen Vinay"""),
        female=_words("""Lakshmamma Savitha Roopa Shobha Sudha Vidya Pushpa Rajeshwari Manjula Bhagya Shilpa
            Nandini Pavithra Rashmi Sahana Kavya Shruthi Asha Gowramma"""),
        surnames=_words("""Gowda Hegde Shetty Rai Bhat Kamath Pai Shenoy Nayak Kulkarni Patil Desai Hiremath
            Angadi Biradar Shettar Naik Poojary Acharya Upadhya Karanth Holla Rao Murthy Swamy"""),
        initials=True,
    ),
    Region(
        "Kerala", 0.05,
        male=_words("""Rajeev Sreejith Anoop Biju Shaji Sajeev Unnikrishnan Jayakumar Ajith Vineeth
            Harikrishnan Sunil Suresh Pradeep Manoj Rajesh Santhosh Jijo Shibu Renjith"""),
        female=_words("""Sreelakshmi Anjana Reshma Soumya Aswathy Bindu Divya Sreeja Remya Sindhu Lekha
            Ambili Jisha Sheeba Deepthi Anju Athira Girija"""),
        surnames=_words("""Nair Menon Pillai Kurup Panicker Nambiar Namboothiri Warrier Varghese Kurian Mathew
            Thomas Joseph Chacko Abraham Jacob Philip Cherian Koshy Thampi Unnithan Kartha Nambiar Krishnan"""),
    ),
    Region(
        "Bengal", 0.07,
        male=_words("""Subhash Sourav Debashis Arindam Partha Tapas Sujit Biswajit Amitava Ranjan Soumya
            Indranil Prosenjit Abhijit Sandip Sumanta Rajib Anirban Subrata Goutam Swapan Tanmoy"""),
        female=_words("""Mousumi Moumita Sharmila Soma Rina Sutapa Tanushree Paromita Debjani Riya Ananya
            Sreeparna Rupa Mitali Chandana Piyali Sumana Tania Rumpa"""),
        surnames=_words("""Das Ghosh Roy Banerjee Mukherjee Chatterjee Ganguly Bhattacharya Chakraborty Dey Dutta
            Bose Basu Sen Sengupta Dasgupta Saha Paul Mondal Mandal Biswas Sarkar Majumdar Haldar Pal Naskar
            Kar Bhowmik Chowdhury Guha Mitra Nandi"""),
        middle_male=_words("Kumar Chandra Nath Ranjan"),
        middle_female=_words("Rani"),
    ),
    Region(
        "Odisha", 0.03,
        male=_words("""Bijay Pradyumna Debasis Sisir Prasanta Sanjib Manas Ashok Bikash Sudhansu Ranjit"""),
        female=_words("""Sasmita Jharana Mamata Sabita Pramila Susmita Lipika Bandana Sanghamitra Itishree"""),
        surnames=_words("""Mohanty Patnaik Pattnaik Behera Sahoo Swain Panda Nayak Rout Jena Dash Pradhan
            Mahapatra Samal Parida Barik Mishra Satpathy"""),
        middle_male=_words("Kumar Chandra Prasad"),
        middle_female=_words("Kumari Rani"),
    ),
    Region(
        "Northeast", 0.02,
        male=_words("""Bhupen Pranjal Hemanta Dipankar Bikash Tenzing Dorjee Lalremruata Thangjam Jyotirmoy"""),
        female=_words("""Bornali Pallavi Dipika Rinku Tashi Lalrinpuii Nilima Mridula Jonali"""),
        surnames=_words("""Baruah Borah Gogoi Saikia Kalita Hazarika Deka Bora Phukan Sangma Marak Lyngdoh
            Singha Bhutia Lepcha Chettri"""),
    ),
    Region(
        "Maharashtra", 0.08,
        male=_words("""Sachin Sandesh Tushar Mangesh Ganesh Nilesh Prashant Santosh Swapnil Vaibhav Omkar Rahul
            Amol Sagar Vikas Sunil Dattatray Vitthal Pandurang Rajendra Yogesh Shrinivas"""),
        female=_words("""Ashwini Madhuri Rupali Snehal Vaishali Sonal Savita Sunita Anjali Pallavi Manisha
            Shubhangi Priyanka Rohini Jayashree Sujata Mangala Surekha Ujwala"""),
        surnames=_words("""Patil Deshmukh Jadhav Pawar Shinde More Gaikwad Kale Bhosale Chavan Kulkarni Deshpande
            Joshi Gokhale Phadke Apte Sawant Salunkhe Kadam Mane Mhatre Naik Thorat Wagh Kamble Shirke"""),
        middle_male=_words("Ramchandra Vasant Shankar Dattatray Suresh"),
        middle_female=_words("Suresh Ramesh Vijay"),
    ),
    Region(
        "Gujarat and Rajasthan", 0.06,
        male=_words("""Hitesh Jignesh Bhavesh Ketan Paresh Chirag Dhaval Mehul Kalpesh Nirav Jayesh Rakesh
            Mahendra Dilip Kishore Harshad Pravin Rajendra"""),
        female=_words("""Hetal Bhavna Falguni Jinal Kinjal Nirmala Hansa Jyotsna Daksha Rekha Minal Urvashi
            Komal Dimple Bhumika Kajal"""),
        surnames=_words("""Patel Shah Mehta Desai Modi Parikh Trivedi Vyas Pandya Bhatt Solanki Parmar Rathod
            Gohil Jadeja Zala Dave Thakkar Amin Panchal Prajapati Makwana Chauhan Joshi Soni"""),
        middle_male=_words("Kumar Bhai Lal Chandra"),
        middle_female=_words("Ben Bai Kumari"),
    ),
    Region(
        "Muslim names", 0.07,
        male=_words("""Mohammed Mohammad Muhammad Abdul Imran Irfan Salman Faisal Arif Aslam Javed Rashid Sameer
            Shahid Tariq Wasim Zakir Yusuf Naseer Iqbal Mohd Anwar Rafiq Shakeel Sajid"""),
        female=_words("""Fatima Ayesha Zainab Nasreen Shabana Farzana Rukhsar Sana Salma Shaheen Noor Rubina
            Tabassum Nazia Parveen Mumtaz Afreen Heena Khushboo"""),
        surnames=_words("""Khan Ansari Qureshi Sheikh Shaikh Syed Siddiqui Ahmed Ali Hussain Mirza Pathan Baig
            Rizvi Naqvi Hashmi Chishti Farooqui Memon Bohra Quadri Khatoon"""),
        middle_male=_words("Abdul Mohammed Ahmed"),
        middle_female=_words("Bano Begum"),
    ),
    Region(
        "Christian and Goan", 0.02,
        male=_words("""Joseph Thomas George John Mathew Francis Anthony Jacob Paul Sebastian Xavier Peter
            Michael Agnelo Savio"""),
        female=_words("""Mary Elizabeth Annamma Rosamma Jessy Teresa Sheela Daisy Shirley Molly Maria Grace
            Lydia Sophia"""),
        surnames=_words("""D'Souza Fernandes Pereira Rodrigues D'Costa Gomes Lobo Pinto Menezes Coutinho Dias
            Noronha Sequeira Almeida Furtado D'Silva Mascarenhas"""),
    ),
    Region(
        "Sindhi and Parsi", 0.01,
        male=_words("""Haresh Kishin Jairam Gope Naresh Cyrus Darius Jehangir Rustom Farokh"""),
        female=_words("""Kamla Hema Roshni Jyoti Shirin Zarine Perizad Dilnaz Anahita"""),
        surnames=_words("""Advani Lalwani Mirchandani Hinduja Kripalani Chandiramani Motwani Irani Wadia Mistry
            Engineer Contractor Daruwala Batliwala"""),
    ),
)

# Spelling variants a receptionist may type for a name spelt the other way on file, and
# typing slips; used to make the "misspelt" queries. (fold() makes the first kind equal.)
VARIANTS: dict[str, tuple[str, ...]] = {
    "Lakshmi": ("Laxmi", "Lakshmee", "Laksmi"), "Laxmi": ("Lakshmi",), "Mohammed": ("Muhammad", "Mohamed", "Mohd"),
    "Mohammad": ("Mohammed", "Muhamad"), "Muhammad": ("Mohammad",), "Preeti": ("Priti", "Prithi"),
    "Priti": ("Preeti",), "Geeta": ("Gita", "Geetha"), "Gita": ("Geeta",), "Seeta": ("Sita",), "Sita": ("Seetha",),
    "Shanti": ("Shanthi", "Santi"), "Shanthi": ("Shanti",), "Kavita": ("Kavitha",), "Kavitha": ("Kavita",),
    "Srinivas": ("Shrinivas", "Sreenivas", "Srinivasa"), "Shrinivas": ("Srinivas",), "Chaudhary": ("Choudhary", "Chaudhari"),
    "Choudhary": ("Chowdhury",), "Chowdhury": ("Chaudhuri",), "Aggarwal": ("Agarwal", "Agrawal"), "Agarwal": ("Aggarwal",),
    "Pattnaik": ("Patnaik",), "Patnaik": ("Pattanaik",), "Sheikh": ("Shaikh", "Shekh"), "Shaikh": ("Sheikh",),
    "Venkatesh": ("Venkatesa", "Venkatsh"), "Subramanian": ("Subramaniam", "Subramanyam"), "Suresh": ("Sooresh",),
    "Pooja": ("Puja",), "Jyoti": ("Jyothi", "Joti"), "Deepak": ("Dipak",), "Deepa": ("Dipa",), "Ramesh": ("Ramesha",),
    "Krishnan": ("Krishnen",), "Reddy": ("Reddi",), "Bhattacharya": ("Bhattacharjee", "Bhattacharyya"),
    "Mukherjee": ("Mukherji",), "Banerjee": ("Banerji",), "Chatterjee": ("Chatterji",), "Iyer": ("Aiyar",),
    "D'Souza": ("Dsouza", "De Souza"), "Gowda": ("Gouda",), "Naidu": ("Naydu",), "Khan": ("Khaan",),
    "Yusuf": ("Yousuf", "Yousaf"), "Fatima": ("Fathima",), "Ayesha": ("Aisha",), "Rajesh": ("Rajsh",),
}
