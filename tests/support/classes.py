"""The record classes of Mother's tutorial, as the tests use them."""

from mother import DbMother


class ClsStars(DbMother):
    table_name = "stars"


class ClsPlanets(DbMother):
    table_name = "planets"


class ClsMoonsInfo(DbMother):
    table_name = "moons_info"


class ClsLifeforms(DbMother):
    table_name = "lifeforms"


class ClsCivilizations(DbMother):
    table_name = "civilizations"
