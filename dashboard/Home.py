"""The dashboard's entry point: the pages (``st.Page``) behind ``st.navigation``, and the sidebar
(dataset, checkpoint, training progress) drawn once here for every page.

    streamlit run dashboard/Home.py

The page scripts live in ``views/`` (not ``pages/``, which Streamlit would also discover on its
own). The sidebar's widgets are drawn by this script on every run, whatever the page, so their
values survive page switches without copies in Session State; the pages read what the sidebar
settled with ``frame.page``. ``dashboard/.streamlit/config.toml`` (beside this script) holds the
server's security settings.
"""

import frame
import streamlit as st

# url_path: the legacy pages/ names, so links and bookmarks (/Detect, ...) keep working.
PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/dataset.py", title="Dataset", icon=":material/photo_library:", url_path="Dataset"),
    st.Page("views/augmentations.py", title="Augmentations", icon=":material/auto_fix_high:",
            url_path="Augmentations"),
    st.Page("views/training.py", title="Training", icon=":material/monitoring:", url_path="Training"),
    st.Page("views/detect.py", title="Detect", icon=":material/center_focus_strong:", url_path="Detect"),
    st.Page("views/gradcam.py", title="GradCAM", icon=":material/local_fire_department:", url_path="GradCAM"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="Evaluate"),
    st.Page("views/review.py", title="Label review", icon=":material/fact_check:", url_path="Label_review"),
]

page = st.navigation(PAGES)
st.set_page_config(page_title=f"{page.title} · YOLOv3 explorer", page_icon=":mag:", layout="wide")
frame.draw_sidebar()
page.run()
