"""The differ (models against the state the migrations build) and how it asks the user."""
