"""Record classes with children and relations, written as Mother's tutorial writes them."""

from mother import MO_NOA, DbMother, MotherManager


class MStars(DbMother, MotherManager):
    table_name = "stars"

    def __init__(self, store=None, flag=MO_NOA, session=None):
        self.initChildManager([MPlanets])
        self.initManyManager([MPlanets])
        DbMother.__init__(self, store, flag, session)


class MMoonsInfo(DbMother):
    table_name = "moons_info"


class MLifeforms(DbMother, MotherManager):
    table_name = "lifeforms"

    def __init__(self, store=None, flag=MO_NOA, session=None):
        self.initRelationManager()
        DbMother.__init__(self, store, flag, session)


class MPlanets(DbMother, MotherManager):
    table_name = "planets"

    def __init__(self, store=None, flag=MO_NOA, session=None):
        self.initChildManager([MMoonsInfo, "civilizations"])
        self.initManyManager([MMoonsInfo])
        self.initRelationManager([MLifeforms])
        DbMother.__init__(self, store, flag, session)
