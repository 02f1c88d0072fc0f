"""The render loop's rooms: the model holder, the job store, finishing; storyforge.render puts them together."""
