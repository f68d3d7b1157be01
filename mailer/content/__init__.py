"""Partner content: topics, partners, items and their moderation."""
